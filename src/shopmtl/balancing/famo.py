"""FAMO (Liu et al., 2023), fast adaptive multitask optimisation: O(1) memory and time per step, no per-task
gradients. Task weights z = softmax(ξ); the model takes a step on Σ_t z_t·log L_t / Σ_t (z_t / L_t), which decreases
every task's log-loss at a balanced rate; after the step ξ moves by the observed change of each log-loss on the
same batch (a forward pass without gradients), so tasks that improved less get more weight."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .base import BALANCERS, Balancer, _backward

EPS = 1e-8


@BALANCERS.register("famo", "FAMO: balanced log-loss decrease with O(1) cost, no per-task gradients")
class FAMO(Balancer):
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weight_lr: float = Field(0.025, gt=0, description="learning rate of the weight logits ξ (Adam)")
        weight_decay: float = Field(1e-3, ge=0, description="γ: decay of ξ toward equal weights")

    def __init__(self, tasks, config, model):  # noqa: ANN001
        super().__init__(tasks, config, model)
        device = next(model.parameters()).device
        self.logits = nn.Parameter(torch.zeros(len(tasks), device=device))
        self.optimizer = torch.optim.Adam([self.logits], lr=self.opts.weight_lr, weight_decay=self.opts.weight_decay)
        self.previous: torch.Tensor | None = None

    def backward(self, losses: dict[str, torch.Tensor], extra: torch.Tensor | None = None) -> dict[str, float]:
        values = torch.stack([losses[t] for t in self.tasks])
        self.previous = values.detach()
        z = torch.softmax(self.logits.detach(), dim=0)
        d = values.clamp_min(0) + EPS  # losses must be positive for their logarithm
        c = (z / d.detach()).sum()
        _backward((z * torch.log(d)).sum() / c, extra)
        effective = z / (d.detach() * c)  # the weight each task's loss gradient receives
        return {t: float(effective[i]) for i, t in enumerate(self.tasks)}

    def after_step(self, recompute: Callable[[], dict[str, torch.Tensor]]) -> None:
        if self.previous is None:
            return
        with torch.no_grad():
            now = torch.stack([v.detach() for v in recompute().values()])
            delta = torch.log(self.previous.clamp_min(0) + EPS) - torch.log(now.clamp_min(0) + EPS)
        with torch.enable_grad():
            grad = torch.autograd.grad(torch.softmax(self.logits, dim=0), self.logits, grad_outputs=delta)[0]
        self.optimizer.zero_grad()
        self.logits.grad = grad
        self.optimizer.step()
        self.previous = None
