"""Dynamic weight average (Liu, Johns and Davison, 2019): w_t(k) = T·exp(r_t/τ) / Σ_i exp(r_i/τ), with
r_t = L_t(k−1) / L_t(k−2) the ratio of a task's mean training loss over the last two epochs; 1 for the first two."""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field

from .base import BALANCERS, Balancer


def dwa_weights(previous: dict[str, float], before: dict[str, float], temperature: float) -> dict[str, float]:
    ratios = {t: previous[t] / before[t] if before[t] > 0 else 1.0 for t in previous}
    top = max(ratios.values())
    exp = {t: math.exp((r - top) / temperature) for t, r in ratios.items()}
    norm = sum(exp.values())
    return {t: len(exp) * e / norm for t, e in exp.items()}


@BALANCERS.register("dwa", "dynamic weight average: weights from the ratio of each task's last two epoch losses")
class DWA(Balancer):
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        temperature: float = Field(2.0, gt=0, description="τ: higher → weights closer to equal")

    def __init__(self, tasks, config, model):  # noqa: ANN001
        super().__init__(tasks, config, model)
        self.epoch_losses: list[dict[str, float]] = []
        self.current = {t: 1.0 for t in tasks}

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        return dict(self.current)

    def on_epoch_end(self, mean_losses: dict[str, float]) -> None:
        self.epoch_losses.append(dict(mean_losses))
        if len(self.epoch_losses) >= 2:
            self.current = dwa_weights(self.epoch_losses[-1], self.epoch_losses[-2], self.opts.temperature)
