"""Numeric features: the standardised value and its missing flag, passed through as they are."""

from __future__ import annotations

import torch
from torch import nn


class NumericEncoder(nn.Module):
    out_dim = 2  # value, missing flag

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values
