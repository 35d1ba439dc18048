"""The input stage of every model: one encoder per feature, concatenated into the shared input vector."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ExperimentConfig
from ..data.preprocess import Preprocessor
from .categorical import CategoricalEncoder
from .multihot import MultiHotEncoder
from .numeric import NumericEncoder
from .text import TextEncoder


class InputEncoder(nn.Module):
    def __init__(self, config: ExperimentConfig, preprocessor: Preprocessor):
        super().__init__()
        encoders: dict[str, nn.Module] = {}
        for name, feature in config.features.items():
            proc = preprocessor.processors[name]
            if feature.type == "categorical":
                encoders[name] = CategoricalEncoder(proc.size, feature.embed_dim)
            elif feature.type == "numeric":
                encoders[name] = NumericEncoder()
            elif feature.type == "multihot":
                encoders[name] = MultiHotEncoder(proc.size, feature.embed_dim)
            else:
                encoders[name] = TextEncoder(proc.size, config.model.text, config.model.dropout)
        self.encoders = nn.ModuleDict(encoders)
        self.out_dim = sum(e.out_dim for e in encoders.values())

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([enc(features[name]) for name, enc in self.encoders.items()], dim=-1)
