"""GradNorm (Chen et al., 2018): learned task weights w_t (kept summing to T) trained so that each task's weighted
gradient norm G_t = w_t·‖∇L_t‖ on the shared part moves toward Ḡ·r_t^α, where r_t = (L_t / L_t(0)) / mean_i(L_i / L_i(0))
is the task's relative inverse training rate: a task that trains slower gets a larger gradient.

The norms are taken on the shared representation where the architecture has one, otherwise on the last shared
weight matrix (the paper's choice); the model is trained on Σ_t w_t·L_t with the weights held fixed."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .base import BALANCERS, Balancer, _backward, log


def gradnorm_loss(weights: torch.Tensor, norms: torch.Tensor, ratios: torch.Tensor, alpha: float) -> torch.Tensor:
    """Σ_t |w_t·n_t − mean(w·n)·r_t^α| with the target held constant (`ratios`: L_t(now) / L_t(0))."""
    g = weights * norms
    r = ratios / ratios.mean()
    target = (g.mean() * r.pow(alpha)).detach()
    return (g - target).abs().sum()


@BALANCERS.register("gradnorm", "GradNorm: learned weights that equalise the tasks' training rates")
class GradNorm(Balancer):
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        alpha: float = Field(1.5, ge=0, description="restoring force: how hard slower tasks are pushed")
        weight_lr: float = Field(0.025, gt=0, description="learning rate of the task weights (Adam)")

    def __init__(self, tasks, config, model):  # noqa: ANN001
        super().__init__(tasks, config, model)
        device = next(model.parameters()).device
        self.w = nn.Parameter(torch.ones(len(tasks), device=device))
        self.optimizer = torch.optim.Adam([self.w], lr=self.opts.weight_lr)
        self.initial: torch.Tensor | None = None
        self.on_rep = getattr(model.sharing, "has_representation", False)
        mats = [p for p in self.shared if p.dim() >= 2]
        self.layer = mats[-1:] if mats else []
        if not self.on_rep and not self.layer:
            log.warning("balance.method=gradnorm: architecture `%s` shares no layer, so the weights stay at 1",
                        config.model.architecture)

    def backward(self, losses: dict[str, torch.Tensor], extra: torch.Tensor | None = None) -> dict[str, float]:
        values = torch.stack([losses[t] for t in self.tasks])
        target = [self.model.sharing.representation] if self.on_rep else self.layer
        if target:
            norms = torch.stack([
                torch.cat([g.reshape(-1) for g in torch.autograd.grad(v, target, retain_graph=True,
                                                                      allow_unused=True) if g is not None]
                          or [v.new_zeros(1)]).norm()
                for v in values]).detach()
            now = values.detach()
            if self.initial is None:
                self.initial = now.clamp_min(1e-8)
            active = norms > 0
            if int(active.sum()) > 1:
                self.optimizer.zero_grad()
                gradnorm_loss(self.w[active], norms[active], (now / self.initial)[active], self.opts.alpha).backward()
                self.optimizer.step()
                with torch.no_grad():
                    self.w.clamp_(min=1e-3)
                    self.w.mul_(len(self.tasks) / self.w.sum())
        w = self.w.detach()
        _backward((w * values).sum(), extra)
        return {t: float(w[i]) for i, t in enumerate(self.tasks)}
