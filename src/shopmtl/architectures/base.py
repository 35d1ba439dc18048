"""The sharing interface: features → one representation per task; which parameters are shared."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import ExperimentConfig, ModelConfig
from ..features import InputEncoder
from ..registry import Registry, check_options


@dataclass
class BuildContext:
    config: ExperimentConfig
    tasks: list[str]
    make_inputs: Callable[[], InputEncoder]  # a fresh input encoder (an architecture may build one per task)

    @property
    def model(self) -> ModelConfig:
        return self.config.model


def mlp(in_dim: int, layers: list[int], dropout: float) -> tuple[nn.Sequential, int]:
    """Linear → ReLU → Dropout per layer width; returns the stack and its output width."""
    blocks: list[nn.Module] = []
    for width in layers:
        blocks += [nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(dropout)]
        in_dim = width
    return nn.Sequential(*blocks), in_dim


class Sharing(nn.Module):
    """Base of every architecture: `forward(features) → {task: representation}` with widths in `out_dims`."""

    options: ClassVar[dict[str, str]] = {}  # the extra `model:` options it accepts → what they do
    independent: ClassVar[bool] = False  # True: tasks share nothing, so each may keep its own best epoch

    out_dims: dict[str, int]

    @classmethod
    def check_options(cls, options: dict[str, Any], config: ExperimentConfig) -> None:
        check_options(options, cls.options, "model", f"architecture `{config.model.architecture}`",
                      set(ModelConfig.model_fields))

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters that every task's loss reaches (what gradient balancers manipulate)."""
        return []

    def task_prefixes(self, task: str) -> list[str]:
        """State-dict prefixes (within this module) owned by one task alone."""
        return []

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise TypeError(f"{type(self).__name__} must define forward")


ARCHITECTURES: Registry[type[Sharing]] = Registry("architecture", "model.architecture")
