"""Text features: token embeddings, then a BiLSTM, a CNN or nothing (bag of embeddings), then masked pooling."""

from __future__ import annotations

import torch
from torch import nn

from ..config import TextEncoderConfig
from .multihot import masked_mean


def masked_max(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    filled = vectors.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    out = filled.max(1).values
    return torch.where(torch.isinf(out), torch.zeros_like(out), out)


def reverse_within_length(mask: torch.Tensor) -> torch.Tensor:
    """Per row, the positions that read its first `length` tokens backwards and leave padding in place."""
    lengths = mask.sum(1, keepdim=True)
    pos = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0).expand_as(mask)
    return torch.where(pos < lengths, lengths - 1 - pos, pos)


class TextEncoder(nn.Module):
    def __init__(self, vocab_size: int, cfg: TextEncoderConfig, dropout: float = 0.0):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        if cfg.encoder == "bilstm":
            self.forward_rnn = nn.LSTM(cfg.embed_dim, cfg.hidden, batch_first=True)
            self.backward_rnn = nn.LSTM(cfg.embed_dim, cfg.hidden, batch_first=True)
            self.out_dim = 2 * cfg.hidden
        elif cfg.encoder == "cnn":
            self.convs = nn.ModuleList(
                nn.Conv1d(cfg.embed_dim, cfg.hidden, k, padding=k // 2) for k in (2, 3, 4)
            )
            self.out_dim = 3 * cfg.hidden
        else:
            self.out_dim = cfg.embed_dim

    def sequence(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-token vectors [B, L, out_dim] (what a tagging head would read)."""
        x = self.dropout(self.embedding(ids))
        if self.cfg.encoder == "bilstm":
            # A BiLSTM without packed sequences (whose backward pass is very slow on the CPU): the backward
            # direction reads each row reversed within its own length, so padding never precedes real tokens.
            order = reverse_within_length(ids != 0)
            fwd, _ = self.forward_rnn(x)
            bwd, _ = self.backward_rnn(x.gather(1, order.unsqueeze(-1).expand_as(x)))
            x = torch.cat([fwd, bwd.gather(1, order.unsqueeze(-1).expand_as(bwd))], dim=-1)
        elif self.cfg.encoder == "cnn":
            h = x.transpose(1, 2)
            x = torch.cat([torch.relu(conv(h))[..., : ids.shape[1]] for conv in self.convs], dim=1).transpose(1, 2)
        return x

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != 0
        x = self.sequence(ids)
        return masked_max(x, mask) if self.cfg.pooling == "max" else masked_mean(x, mask)
