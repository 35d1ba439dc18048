"""Multi-hot features (sets of tokens such as tags or category lists): the mean of their embeddings."""

from __future__ import annotations

import torch
from torch import nn

from .categorical import embedding_dim


def masked_mean(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where mask is true ([B, L, D], [B, L] → [B, D]); zeros for an empty row."""
    m = mask.unsqueeze(-1).to(vectors.dtype)
    return (vectors * m).sum(1) / m.sum(1).clamp(min=1.0)


class MultiHotEncoder(nn.Module):
    def __init__(self, vocab_size: int, dim: int | None = None):
        super().__init__()
        self.out_dim = dim or embedding_dim(vocab_size)
        self.embedding = nn.Embedding(vocab_size, self.out_dim, padding_idx=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.embedding(ids), ids != 0)
