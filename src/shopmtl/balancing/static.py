"""Static weighting: a fixed λ per task from `balance.weights` (1 for tasks it does not name)."""

from __future__ import annotations

import torch

from .base import BALANCERS, Balancer


@BALANCERS.register("static", "fixed λ per task from balance.weights (default 1)")
class Static(Balancer):
    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        return {t: float(self.config.balance.weights.get(t, 1.0)) for t in losses}
