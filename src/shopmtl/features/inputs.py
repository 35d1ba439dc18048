"""The input stage of every model: one encoder per feature, concatenated into the shared input vector. Text
encoders also leave their per-token vectors in `sequences` for the tagging heads that read them."""

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
        self.text: list[str] = []
        for name, feature in config.features.items():
            proc = preprocessor.processors[name]
            if feature.type == "categorical":
                encoders[name] = CategoricalEncoder(proc.size, feature.embed_dim)
            elif feature.type == "numeric":
                encoders[name] = NumericEncoder()
            elif feature.type == "multihot":
                encoders[name] = MultiHotEncoder(proc.size, feature.embed_dim)
            elif config.model.text.encoder == "pretrained":  # one pretrained model reads every text feature
                from .pretrained import PretrainedTextEncoder

                shared = next((e for e in encoders.values() if isinstance(e, PretrainedTextEncoder)), None)
                encoders[name] = shared or PretrainedTextEncoder(config.model.text)
                encoders[name].add_feature(name)
                self.text.append(name)
            else:
                encoders[name] = TextEncoder(proc.size, config.model.text, config.model.dropout, feature.max_len)
                self.text.append(name)
        self.encoders = nn.ModuleDict(encoders)
        self.out_dim = sum(e.out_dim for e in encoders.values())  # a shared encoder counts once per feature
        self.sequences: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def sequence_width(self, name: str) -> int:
        return self.encoders[name].out_dim

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for name, enc in self.encoders.items():
            if name in self.text:
                seq, mask, pooled = enc.encode(features, name)
                self.sequences[name] = (seq, mask)
                parts.append(pooled)
            else:
                parts.append(enc(features[name]))
        return torch.cat(parts, dim=-1)
