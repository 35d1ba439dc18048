"""Numeric features: the standardised value and its missing flag, and with `buckets:` the embedding of its
quantile bucket (fitted on train) next to them."""

from __future__ import annotations

import torch
from torch import nn

from ..data.preprocess import BUCKET


class NumericEncoder(nn.Module):
    def __init__(self, buckets: int | None = None, dim: int = 8):
        super().__init__()
        self.embedding = nn.Embedding(buckets, dim, padding_idx=0) if buckets else None
        self.out_dim = 2 + (dim if buckets else 0)  # value, missing flag (, bucket embedding)
        self.tap = nn.Identity()  # where explanations attribute the feature

    def forward(self, features: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        values = features[name]
        if self.embedding is None:
            return self.tap(values)
        return self.tap(torch.cat([values, self.embedding(features[name + BUCKET])], dim=-1))
