"""Multi-hot features (sets of tokens such as tags or category lists): the mean of their embeddings."""

from __future__ import annotations

import torch

from .categorical import CategoricalEncoder


def masked_mean(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where mask is true ([B, L, D], [B, L] → [B, D]); zeros for an empty row."""
    m = mask.unsqueeze(-1).to(vectors.dtype)
    return (vectors * m).sum(1) / m.sum(1).clamp(min=1.0)


class MultiHotEncoder(CategoricalEncoder):
    """Like a categorical feature, but a row holds several ids (0 = padding) whose vectors are averaged."""

    def forward(self, features: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        ids = features[name]
        return masked_mean(self.embedding(ids), ids != 0)
