"""Homoscedastic uncertainty weighting (Kendall, Gal and Cipolla, 2018): a learned log-variance s_t per task and
the objective Σ_t ½·e^(−s_t)·L_t + ½·s_t. At its optimum e^(s_t) = L_t, so a task's weight ½·e^(−s_t) tends to the
inverse of its remaining loss (for MSE: its noise variance)."""

from __future__ import annotations

import torch
from torch import nn

from .base import BALANCERS, Balancer, _backward


@BALANCERS.register("uncertainty", "learned homoscedastic uncertainty: ½·e^(−s_t)·L_t + ½·s_t (Kendall et al.)")
class Uncertainty(Balancer):
    def __init__(self, tasks, config, model):  # noqa: ANN001
        super().__init__(tasks, config, model)
        device = next(model.parameters()).device
        self.log_vars = nn.Parameter(torch.zeros(len(tasks), device=device))

    def parameters(self) -> list[nn.Parameter]:
        return [self.log_vars]

    def backward(self, losses: dict[str, torch.Tensor], extra: torch.Tensor | None = None) -> dict[str, float]:
        total = sum(0.5 * torch.exp(-self.log_vars[i]) * losses[t] + 0.5 * self.log_vars[i]
                    for i, t in enumerate(self.tasks))
        _backward(total, extra)
        return {t: float(0.5 * torch.exp(-self.log_vars[i].detach())) for i, t in enumerate(self.tasks)}
