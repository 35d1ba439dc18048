"""CAGrad (Liu et al., 2021): the update d = g₀ + (√φ / ‖g_w‖)·g_w maximises the worst task's improvement within a
ball of radius c·‖g₀‖ around the mean gradient g₀, where w solves min_{w ∈ simplex} g_wᵀg₀ + c‖g₀‖·‖g_w‖ and
g_w = Σ w_t g_t. With c = 0 it is the mean gradient; `rescale` divides by 1 + c²."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from scipy.optimize import minimize

from .base import BALANCERS, GradientBalancer, GradientOptions


def cagrad_direction(grads: torch.Tensor, c: float, rescale: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(tasks, n) → (direction (n,), effective per-task weights: direction = Σ_t weight_t · g_t)."""
    n = len(grads)
    mean_w = torch.full((n,), 1.0 / n, dtype=grads.dtype, device=grads.device)
    if c == 0:
        return grads.mean(0), mean_w
    gram = (grads @ grads.T).double().cpu().numpy()
    g0_norm = float(np.sqrt(max(gram.mean(), 0.0)) + 1e-8)
    radius = c * g0_norm
    b = gram.mean(1)  # g_t · g₀ for each t

    def objective(w: np.ndarray) -> float:
        return float(w @ b + radius * np.sqrt(max(w @ gram @ w, 0.0) + 1e-8))

    start = np.full(n, 1.0 / n)
    res = minimize(objective, start, bounds=[(0.0, 1.0)] * n,
                   constraints=({"type": "eq", "fun": lambda w: 1.0 - w.sum()},), method="SLSQP")
    w = torch.tensor(res.x if res.success else start, dtype=grads.dtype, device=grads.device)
    gw_norm = float(torch.sqrt((w @ (grads @ grads.T) @ w).clamp_min(0))) + 1e-8
    lam = radius / gw_norm
    weights = mean_w + lam * w
    if rescale:
        weights = weights / (1 + c**2)
    return (weights[:, None] * grads).sum(0), weights


@BALANCERS.register("cagrad", "CAGrad: the best worst-task improvement near the mean gradient (option c)")
class CAGrad(GradientBalancer):
    class Options(GradientOptions):
        c: float = Field(0.4, ge=0, description="radius of the ball around the mean gradient, relative to its norm")
        rescale: bool = Field(True, description="divide the update by 1 + c²")

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cagrad_direction(grads, self.opts.c, self.opts.rescale)
