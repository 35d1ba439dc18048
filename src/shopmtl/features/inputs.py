"""The input stage of every model: one encoder per feature, concatenated into the shared input vector. Text
encoders also leave their per-token vectors in `sequences` for the tagging heads that read them.

A feature kind is one builder in `ENCODERS` (kind → module for one feature); every encoder is called as
`encoder(features, name)`, text encoders as `encoder.encode(features, name)` (per-token vectors too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..config import ExperimentConfig
from ..data.preprocess import Preprocessor
from .categorical import CategoricalEncoder
from .multihot import MultiHotEncoder
from .numeric import NumericEncoder
from .sparse import SparseEncoder
from .text import TextEncoder

Builder = Callable[[Any, Any, ExperimentConfig, dict[str, nn.Module]], nn.Module]


def _text(feature: Any, proc: Any, config: ExperimentConfig, built: dict[str, nn.Module]) -> nn.Module:
    if config.model.text.encoder == "pretrained":  # one pretrained model reads every text feature
        from .pretrained import PretrainedTextEncoder

        shared = next((e for e in built.values() if isinstance(e, PretrainedTextEncoder)), None)
        return shared or PretrainedTextEncoder(config.model.text)
    return TextEncoder(proc.size, config.model.text, config.model.dropout, feature.max_len)


ENCODERS: dict[str, Builder] = {
    "categorical": lambda f, proc, config, built: CategoricalEncoder(proc.size, f.embed_dim),
    "numeric": lambda f, proc, config, built: NumericEncoder(proc.size if f.buckets else None, f.embed_dim),
    "multihot": lambda f, proc, config, built: MultiHotEncoder(proc.size, f.embed_dim),
    "sparse": lambda f, proc, config, built: SparseEncoder(proc.size, f.embed_dim),
    "text": _text,
}


def deep_features(config: ExperimentConfig) -> list[str]:
    """The features the deep path reads: all but the sparse ones that only the wide term reads."""
    return [n for n, f in config.features.items() if f.type != "sparse" or f.deep]


class InputEncoder(nn.Module):
    def __init__(self, config: ExperimentConfig, preprocessor: Preprocessor):
        super().__init__()
        encoders: dict[str, nn.Module] = {}
        self.text: list[str] = []
        for name in deep_features(config):
            feature = config.features[name]
            encoders[name] = ENCODERS[feature.type](feature, preprocessor.processors[name], config, encoders)
            if feature.type == "text":
                if hasattr(encoders[name], "add_feature"):
                    encoders[name].add_feature(name)
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
                parts.append(enc(features, name))
        if not parts:
            return next(iter(features.values())).new_zeros((len(next(iter(features.values()))), 0),
                                                          dtype=torch.float32)
        return torch.cat(parts, dim=-1)
