"""Text features over learned token embeddings: a BiLSTM, a CNN, a small Transformer (trained from scratch) or
nothing (bag of embeddings), giving per-token vectors (what tagging heads read) and a masked pooling of them (what
the other tasks read)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import TextEncoderConfig
from .multihot import masked_mean


def masked_max(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    filled = vectors.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    out = filled.max(1).values
    return torch.where(torch.isinf(out), torch.zeros_like(out), out)


def pool(vectors: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    return masked_max(vectors, mask) if how == "max" else masked_mean(vectors, mask)


def reverse_within_length(mask: torch.Tensor) -> torch.Tensor:
    """Per row, the positions that read its first `length` tokens backwards and leave padding in place."""
    lengths = mask.sum(1, keepdim=True)
    pos = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0).expand_as(mask)
    return torch.where(pos < lengths, lengths - 1 - pos, pos)


class SmallTransformer(nn.Module):
    """Pre-norm Transformer encoder layers with learned positions, for text encoders trained from scratch."""

    def __init__(self, width: int, layers: int, heads: int, dropout: float, max_len: int = 512):
        super().__init__()
        self.positions = nn.Embedding(max_len, width)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.scale = math.sqrt(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = min(x.shape[1], self.positions.num_embeddings)
        x = x[:, :length] * self.scale + self.positions.weight[:length]
        # a row with no token would attend to nothing (NaN): let it attend to its first (padding) position
        pad = ~mask[:, :length]
        pad[:, 0] &= mask[:, :length].any(1)
        return self.norm(self.layers(x, src_key_padding_mask=pad))


class TextEncoder(nn.Module):
    """Token ids [B, L] (0 = padding) → per-token vectors [B, L, out_dim] and their pooling [B, out_dim]."""

    def __init__(self, vocab_size: int, cfg: TextEncoderConfig, dropout: float = 0.0, max_len: int = 512):
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
        elif cfg.encoder == "transformer":
            self.transformer = SmallTransformer(cfg.embed_dim, cfg.layers, cfg.heads, dropout, max_len)
            self.out_dim = cfg.embed_dim
        else:
            self.out_dim = cfg.embed_dim

    def sequence(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-token vectors [B, L, out_dim]."""
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
        elif self.cfg.encoder == "transformer":
            x = self.transformer(x, ids != 0)
        return x

    def encode(self, features: dict[str, torch.Tensor], name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-token vectors, token mask, pooled vector) of text feature `name`."""
        ids = features[name]
        mask = ids != 0
        seq = self.sequence(ids)
        mask = mask[:, : seq.shape[1]]
        return seq, mask, pool(seq, mask, self.cfg.pooling)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.encode({"text": ids}, "text")[2]
