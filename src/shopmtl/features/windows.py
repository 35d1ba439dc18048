"""Token-window features of a tagger: each token with its neighbours two either side, the bigrams around it and
its shape. The same template feeds the feature-CRF baseline (as crfsuite's string features) and the neural
tagger's linear emission term (as ids, `tasks/tagging.py`), so the neural tagger contains the feature CRF."""

from __future__ import annotations

import unicodedata
from typing import Any

OFFSETS = (-2, -1, 1, 2)  # neighbours read besides the token itself
BIGRAMS = ((-1, 0), (0, 1))  # (left, right) offsets of the bigrams around a token
SHAPES = ("pad", "digit", "latin", "cjk", "punct", "other")
BOS, EOS = "<s>", "</s>"


def token_shape(token: str) -> str:
    """The coarse kind of a token: digit, latin letters, CJK, punctuation or other."""
    if not token:
        return "pad"
    if token.isdigit():
        return "digit"
    if token.isascii() and token.isalpha():
        return "latin"
    first = token[0]
    if "\u3400" <= first <= "\u9fff" or "\uf900" <= first <= "\ufaff":
        return "cjk"
    if unicodedata.category(first).startswith("P") or unicodedata.category(first).startswith("S"):
        return "punct"
    return "other"


def crf_features(tokens: list[str]) -> list[dict[str, Any]]:
    """Per token, crfsuite features of the window template."""
    def at(j: int) -> str:
        return tokens[j] if 0 <= j < len(tokens) else (BOS if j < 0 else EOS)

    out = []
    for i, tok in enumerate(tokens):
        f: dict[str, Any] = {"bias": 1.0, "t": tok, "shape": token_shape(tok)}
        for d in OFFSETS:
            f[f"t{d:+d}"] = at(i + d)
        for a, b in BIGRAMS:
            f[f"bi{a:+d}{b:+d}"] = at(i + a) + "|" + at(i + b)
        out.append(f)
    return out


# ---------------------------------------------------------------- the template over token ids, for a neural tagger
import torch  # noqa: E402
from torch import nn  # noqa: E402


class WindowEmissions(nn.Module):
    """A linear term per token and tag over the window template, on token ids [B, L] (0 = padding): a weight per
    (offset, token id, tag) for the token and its neighbours, per (hashed bigram, tag) and per (shape, tag).
    Positions outside a row read a boundary id, as the CRF's <s> / </s>."""

    PRIME = 2654435761

    def __init__(self, tokens: list[str], n_tags: int, buckets: int, first_id: int = 2):
        """`tokens`: the strings of ids `first_id`, `first_id + 1`, … (ids below are padding / unknown)."""
        super().__init__()
        self.size = first_id + len(tokens) + 1  # the last id is the boundary
        self.boundary = self.size - 1
        self.buckets = buckets
        self.unigrams = nn.Embedding((1 + len(OFFSETS)) * self.size, n_tags)
        self.bigrams = nn.Embedding(buckets, n_tags)
        self.shapes = nn.Embedding(len(SHAPES), n_tags)
        for table in (self.unigrams, self.bigrams, self.shapes):
            nn.init.zeros_(table.weight)  # as a CRF's feature weights start
        shape_ids = [SHAPES.index("other")] * first_id + [SHAPES.index(token_shape(t)) for t in tokens] + [0]
        self.register_buffer("shape_of", torch.tensor(shape_ids, dtype=torch.int64), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, L] token ids → [B, L, tags]."""
        length = ids.shape[1]
        reach = max(abs(d) for d in OFFSETS)
        x = torch.where(ids > 0, ids.clamp(max=self.boundary - 1), torch.full_like(ids, self.boundary))
        padded = nn.functional.pad(x, (reach, reach), value=self.boundary)

        def at(d: int) -> torch.Tensor:
            return padded[:, reach + d: reach + d + length]

        score = self.unigrams(at(0)) + self.shapes(self.shape_of[x])
        for k, d in enumerate(OFFSETS, 1):
            score = score + self.unigrams(at(d) + k * self.size)
        for k, (a, b) in enumerate(BIGRAMS):
            pair = (at(a) * self.size + at(b)) * (len(BIGRAMS)) + k
            score = score + self.bigrams((pair * self.PRIME) % self.buckets)
        return score
