"""Random loss weighting (Lin et al., 2022): at every step, weights T·softmax(z) with z ~ N(0, I), seeded."""

from __future__ import annotations

import torch

from .base import BALANCERS, Balancer


@BALANCERS.register("rlw", "random loss weighting: T·softmax of a fresh normal draw every step")
class RLW(Balancer):
    def __init__(self, tasks, config, model):  # noqa: ANN001
        super().__init__(tasks, config, model)
        self.generator = torch.Generator().manual_seed(config.seed)

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        w = len(self.tasks) * torch.softmax(torch.randn(len(self.tasks), generator=self.generator), dim=0)
        return {t: float(w[i]) for i, t in enumerate(self.tasks)}
