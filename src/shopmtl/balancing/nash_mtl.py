"""Nash-MTL (Navon et al., 2022): the update d = Σ_t α_t g_t is the Nash bargaining solution, α > 0 with
(GGᵀ α)_t = 1/α_t for every task — each task's gain α_t·g_tᵀd is the same, and no task is sacrificed.
Found by Newton's method on the strictly convex ½·αᵀKα − Σ log α_t (its gradient is zero exactly there).
α scales as 1/‖g‖; the update uses it rescaled to sum to T (the direction is the bargaining one, the step size that
of summed losses), so the global gradient clipping does not shrink the towers' gradients along with it."""

from __future__ import annotations

import torch
from pydantic import Field

from .base import BALANCERS, GradientBalancer, GradientOptions


def nash_weights(gram: torch.Tensor, iters: int = 50, tol: float = 1e-10) -> torch.Tensor:
    """α > 0 solving K α = 1/α (K: the Gram matrix; a tiny ridge keeps collinear gradients solvable)."""
    k = gram.double()
    n = len(k)
    k = k + 1e-8 * (float(k.diagonal().mean()) + 1e-12) * torch.eye(n, dtype=k.dtype)
    alpha = 1.0 / k.diagonal().clamp_min(1e-20).sqrt()

    def f(a: torch.Tensor) -> float:
        return float(0.5 * a @ k @ a - torch.log(a).sum())

    for _ in range(iters):
        grad = k @ alpha - 1.0 / alpha
        if float(grad.norm()) < tol * (1 + float(alpha.norm())):
            break
        hess = k + torch.diag(1.0 / alpha**2)
        step = torch.linalg.solve(hess, grad)
        t, current = 1.0, f(alpha)
        while t > 1e-10:  # backtracking: stay positive and descend
            new = alpha - t * step
            if bool((new > 0).all()) and f(new) <= current - 1e-4 * t * float(grad @ step):
                break
            t *= 0.5
        alpha = new
    return alpha


@BALANCERS.register("nash_mtl", "Nash-MTL: the bargaining solution of the task gradients (GGᵀα = 1/α)")
class NashMTL(GradientBalancer):
    class Options(GradientOptions):
        update_every: int = Field(1, ge=1, description="solve for α every this many steps, reuse it between")

    def __init__(self, tasks, config, model):  # noqa: ANN001
        super().__init__(tasks, config, model)
        self.step = 0
        self.alpha: torch.Tensor | None = None

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.alpha is None or len(self.alpha) != len(grads) or self.step % self.opts.update_every == 0:
            alpha = nash_weights(grads @ grads.T)
            self.alpha = (len(alpha) * alpha / alpha.sum()).to(grads.dtype).to(grads.device)
        self.step += 1
        return (self.alpha[:, None] * grads).sum(0), self.alpha
