"""Categorical features: an embedding per vocabulary id (0 = missing, 1 = unseen in training)."""

from __future__ import annotations

import torch
from torch import nn


def embedding_dim(vocab_size: int, cap: int = 64) -> int:
    """A common rule of thumb: grows with the vocabulary as 1.6·n^0.56, between 4 and `cap`."""
    return int(max(4, min(cap, round(1.6 * vocab_size**0.56))))


class CategoricalEncoder(nn.Module):
    def __init__(self, vocab_size: int, dim: int | None = None):
        super().__init__()
        self.out_dim = dim or embedding_dim(vocab_size)
        self.embedding = nn.Embedding(vocab_size, self.out_dim, padding_idx=0)

    def forward(self, features: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        return self.embedding(features[name])
