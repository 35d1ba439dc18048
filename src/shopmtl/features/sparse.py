"""Sparse features (hashed n-grams, ids and their crosses, with weights): a weighted bag of embeddings for the deep
path, and the per-task linear ("wide") term over them (Wide & Deep, Cheng et al., 2016).

Both read a sparse feature as ids [B, K] (0 = padding) and weights [B, K] through an `EmbeddingBag` in sum mode
with per-sample weights. The weights pass a tap (an identity module) after being zeroed at padding, which is where
explanations attribute the feature: an all-padding row is the explanation's baseline."""

from __future__ import annotations

import torch
from torch import nn

from ..data.preprocess import WEIGHT


def bag_weights(tap: nn.Module, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The per-sample weights of a bag: zero at padding, through the feature's attribution tap."""
    return tap(weights * (ids != 0).to(weights.dtype))


class SparseEncoder(nn.Module):
    """Deep path: Σ_k w_k · E[id_k], a TF-IDF-weighted sum of token embeddings [B, dim]."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.out_dim = dim
        self.bag = nn.EmbeddingBag(size, dim, mode="sum", padding_idx=0)
        self.tap = nn.Identity()

    def forward(self, features: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        ids = features[name]
        return self.bag(ids, per_sample_weights=bag_weights(self.tap, ids, features[name + WEIGHT]))


class WideTerm(nn.Module):
    """One task's linear term over the wide features: Σ_f Σ_k w_fk · W_f[id_fk] + b, [B, outputs]. The weight
    tables take sparse gradients (only the rows a batch touches are updated, `training/optim.py`)."""

    def __init__(self, sizes: dict[str, int], outputs: int):
        super().__init__()
        self.names = list(sizes)
        offsets, total = [], 0
        for name in self.names:
            offsets.append(total)
            total += sizes[name]
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.int64), persistent=False)
        self.table = nn.EmbeddingBag(total, outputs, mode="sum", sparse=True)
        nn.init.zeros_(self.table.weight)  # a linear model starts at 0, as logistic regression does
        self.bias = nn.Parameter(torch.zeros(outputs))
        self.taps = nn.ModuleDict({name: nn.Identity() for name in self.names})

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, weights = [], []
        for k, name in enumerate(self.names):
            f_ids = features[name]
            # id 0 (padding) lands on the feature's own first row, with weight 0: it adds nothing
            ids.append(f_ids + self.offsets[k])
            weights.append(bag_weights(self.taps[name], f_ids, features[name + WEIGHT]))
        return self.table(torch.cat(ids, 1), per_sample_weights=torch.cat(weights, 1)) + self.bias
