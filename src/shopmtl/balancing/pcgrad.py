"""PCGrad (Yu et al., 2020): each task's gradient is projected onto the normal plane of every other task's gradient
it conflicts with (negative inner product), in a random order each step; the projected gradients are summed."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from .base import BALANCERS, GradientBalancer, GradientOptions


def pcgrad_project(grads: torch.Tensor, order: list[int] | None = None) -> torch.Tensor:
    """(tasks, n) → the projected gradients, same shape. `order`: the other tasks' order (default: 0..T−1)."""
    proj = grads.clone()
    order = list(range(len(grads))) if order is None else order
    sq = (grads * grads).sum(1).clamp_min(1e-20)
    for i in range(len(grads)):
        for j in order:
            if j == i:
                continue
            dot = proj[i] @ grads[j]
            if dot < 0:
                proj[i] = proj[i] - dot / sq[j] * grads[j]
    return proj


@BALANCERS.register("pcgrad", "PCGrad: project away the conflicting part of each task's gradient")
class PCGrad(GradientBalancer):
    class Options(GradientOptions):
        reduction: Literal["sum", "mean"] = Field("sum", description="how the projected gradients are combined")

    def __init__(self, tasks, config, model):  # noqa: ANN001
        super().__init__(tasks, config, model)
        self.generator = torch.Generator().manual_seed(config.seed)

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        order = torch.randperm(len(grads), generator=self.generator).tolist()
        proj = pcgrad_project(grads, order)
        direction = proj.sum(0) if self.opts.reduction == "sum" else proj.mean(0)
        return direction, torch.ones(len(grads))
