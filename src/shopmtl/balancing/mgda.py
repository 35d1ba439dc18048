"""MGDA (Désidéri, 2012; Sener and Koltun, 2018): the min-norm point of the convex hull of the task gradients —
a direction that decreases every task when one exists. Solved in closed form for two tasks and by Frank-Wolfe
otherwise. `grad_on: representation` is the paper's MGDA-UB: the gradients of the shared representation bound the
parameters' and cost T passes through the towers only."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from .base import BALANCERS, GradientBalancer, GradientOptions


def two_point(aa: float, ab: float, bb: float) -> float:
    """γ minimising ‖γ·a + (1−γ)·b‖² over [0, 1], from the inner products."""
    denom = aa - 2 * ab + bb
    if denom <= 1e-20:
        return 0.5
    return float(min(max((bb - ab) / denom, 0.0), 1.0))


def min_norm_weights(gram: torch.Tensor, iters: int = 250, tol: float = 1e-7) -> torch.Tensor:
    """α on the simplex minimising αᵀ K α for the Gram matrix K of the task gradients."""
    k = gram.double()
    n = len(k)
    if n == 1:
        return torch.ones(1, dtype=k.dtype)
    if n == 2:
        g = two_point(float(k[0, 0]), float(k[0, 1]), float(k[1, 1]))
        return torch.tensor([g, 1 - g], dtype=k.dtype)
    alpha = torch.full((n,), 1.0 / n, dtype=k.dtype)
    for _ in range(iters):
        ka = k @ alpha
        t = int(torch.argmin(ka))
        # line search between the current point v = Σ α_i g_i and the vertex g_t
        gamma = two_point(float(k[t, t]), float(ka[t]), float(alpha @ ka))
        new = (1 - gamma) * alpha
        new[t] += gamma
        if float((new - alpha).abs().sum()) < tol:
            alpha = new
            break
        alpha = new
    return alpha


@BALANCERS.register("mgda", "MGDA: the min-norm combination of task gradients (grad_on: representation = MGDA-UB)")
class MGDA(GradientBalancer):
    class Options(GradientOptions):
        normalize: Literal["none", "l2", "loss", "loss+"] = Field(
            "none", description="gradient normalisation before solving: l2 norm, loss, or loss × l2 norm")

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = torch.ones(len(grads), device=grads.device)
        norms = grads.norm(dim=1).clamp_min(1e-12)
        if self.opts.normalize == "l2":
            scale = norms
        elif self.opts.normalize == "loss":
            scale = losses.to(grads.device).clamp_min(1e-12)
        elif self.opts.normalize == "loss+":
            scale = losses.to(grads.device).clamp_min(1e-12) * norms
        normed = grads / scale[:, None]
        alpha = min_norm_weights(normed @ normed.T).to(grads.dtype).to(grads.device)
        return (alpha[:, None] * grads).sum(0), alpha
