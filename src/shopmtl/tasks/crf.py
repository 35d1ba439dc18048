"""A linear-chain CRF over per-token emission scores: the negative log-likelihood of the gold tags (forward
algorithm) and Viterbi decoding, both batched, with the transitions a tagging scheme forbids fixed at −10⁴ so
that decoding always yields well-formed sequences. Rows are left-aligned: `mask` is True on a prefix of each row.

The likelihood leaves out the scheme's end constraint: a row cut at `max_len` may end inside a span, and its gold
path must stay a path the model can score; decoding applies it."""

from __future__ import annotations

import torch
from torch import nn

FORBIDDEN = -1e4


class CRF(nn.Module):
    def __init__(self, n_tags: int, allowed: list[list[bool]] | None = None, start_allowed: list[bool] | None = None,
                 end_allowed: list[bool] | None = None):
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))
        self.start = nn.Parameter(torch.zeros(n_tags))
        self.end = nn.Parameter(torch.zeros(n_tags))

        def penalty(ok: list | None, shape: tuple[int, ...]) -> torch.Tensor:
            if ok is None:
                return torch.zeros(shape)
            return (~torch.tensor(ok, dtype=torch.bool)).float() * FORBIDDEN

        self.register_buffer("transition_penalty", penalty(allowed, (n_tags, n_tags)), persistent=False)
        self.register_buffer("start_penalty", penalty(start_allowed, (n_tags,)), persistent=False)
        self.register_buffer("end_penalty", penalty(end_allowed, (n_tags,)), persistent=False)

    def _scores(self, decoding: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.transitions + self.transition_penalty, self.start + self.start_penalty,
                self.end + self.end_penalty if decoding else self.end)

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log p(tags | emissions) per row; `emissions` [B, L, T], `tags` [B, L] (any value where masked),
        `mask` [B, L] with at least the first position True in every row."""
        emissions = emissions.float()
        trans, start, end = self._scores(decoding=False)
        tags = tags.clamp_min(0)
        rows = torch.arange(emissions.shape[0], device=emissions.device)
        maskf = mask.float()
        # score of the gold path
        score = start[tags[:, 0]] + emissions[rows, 0, tags[:, 0]]
        for i in range(1, emissions.shape[1]):
            step = trans[tags[:, i - 1], tags[:, i]] + emissions[rows, i, tags[:, i]]
            score = score + step * maskf[:, i]
        last = tags[rows, mask.long().sum(1) - 1]
        score = score + end[last]
        # log partition function
        alpha = start + emissions[:, 0]
        for i in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans + emissions[:, i].unsqueeze(1), dim=1)
            alpha = torch.where(mask[:, i].unsqueeze(1), nxt, alpha)
        return score - torch.logsumexp(alpha + end, dim=1)

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The most likely tag sequence per row [B, L]; −1 where masked (and in rows with no token)."""
        emissions = emissions.float()
        trans, start, end = self._scores(decoding=True)
        batch, length, n_tags = emissions.shape
        if length == 0:
            return torch.full((batch, 0), -1, dtype=torch.long, device=emissions.device)
        score = start + emissions[:, 0]
        keep = torch.arange(n_tags, device=emissions.device).expand(batch, n_tags)
        pointers = []
        for i in range(1, length):
            best, arg = (score.unsqueeze(2) + trans).max(dim=1)
            on = mask[:, i].unsqueeze(1)
            score = torch.where(on, best + emissions[:, i], score)
            pointers.append(torch.where(on, arg, keep))  # past a row's end: each tag points at itself
        tag = (score + end).argmax(dim=1)
        path = [tag]
        for arg in reversed(pointers):
            tag = arg.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        out = torch.stack(path[::-1], dim=1)
        return out.masked_fill(~mask, -1)
