"""The balancer interface: per-task losses in, one backward pass out, the task weights it used reported."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import nn

from ..config import BalanceConfig, ExperimentConfig
from ..registry import NoOptions, Registry, parse_options


class Balancer:
    """Combines task losses. Subclasses override `weights` (loss weighting) or `backward` (gradient methods)."""

    Options: ClassVar[type[BaseModel]] = NoOptions  # the extra `balance:` options it accepts (typed)

    def __init__(self, tasks: list[str], config: ExperimentConfig, shared: list[nn.Parameter]):
        self.tasks = tasks
        self.config = config
        self.shared = shared  # the architecture's shared parameters, for methods that need their gradients

    @classmethod
    def check_options(cls, options: dict[str, Any], config: ExperimentConfig) -> BaseModel:
        return parse_options(options, cls.Options, "balance", f"balancer `{config.balance.method}`",
                             set(BalanceConfig.model_fields))

    def parameters(self) -> list[nn.Parameter]:
        """Learnable parameters of the balancer itself (optimised with the model)."""
        return []

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        return {t: 1.0 for t in losses}

    def backward(self, losses: dict[str, torch.Tensor], extra: torch.Tensor | None = None) -> dict[str, float]:
        """Back-propagate the combined loss; return the weight each task got. `extra`: the architecture's
        regularisers (soft-sharing penalty, adversarial terms), added as they are, never re-weighted."""
        w = self.weights(losses)
        total = sum(w[t] * loss for t, loss in losses.items())
        if extra is not None:
            total = total + extra
        total.backward()
        return w


BALANCERS: Registry[type[Balancer]] = Registry("balancer", "balance.method")
