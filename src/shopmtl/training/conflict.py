"""Gradient conflict monitor: every N training steps (and at each epoch's first), the pairwise cosine similarity
of the tasks' gradients on the shared parameters; averaged per epoch into `conflict.<a>.<b>` history columns, with
`conflict.negative_share`, the share of measured pairs pointing against each other."""

from __future__ import annotations

from itertools import combinations

import torch

from ..balancing.base import task_gradients


class ConflictMonitor:
    def __init__(self, tasks: list[str], params: list[torch.nn.Parameter], every: int | None):
        self.tasks, self.params, self.every = tasks, [p for p in params if p.requires_grad], every
        self.pairs = list(combinations(range(len(tasks)), 2))
        self.reset()

    @property
    def active(self) -> bool:
        return bool(self.every) and bool(self.params) and bool(self.pairs)

    def reset(self) -> None:
        self.sums = [0.0] * len(self.pairs)
        self.counts = [0] * len(self.pairs)
        self.negative = 0

    def due(self, global_step: int, epoch_step: int) -> bool:
        return self.active and (epoch_step == 1 or global_step % self.every == 0)

    def measure(self, losses: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
        """Before the backward pass (the graph is kept); tasks without a label in the batch are left out."""
        grads = task_gradients([losses[t] for t in self.tasks], self.params).float()
        norms = grads.norm(dim=1)
        for k, (i, j) in enumerate(self.pairs):
            if norms[i] > 0 and norms[j] > 0:
                cos = float(grads[i] @ grads[j] / (norms[i] * norms[j]))
                self.sums[k] += cos
                self.counts[k] += 1
                self.negative += cos < 0

    def columns(self) -> dict[str, float]:
        out = {f"conflict.{self.tasks[i]}.{self.tasks[j]}": self.sums[k] / self.counts[k]
               for k, (i, j) in enumerate(self.pairs) if self.counts[k]}
        if out:
            out["conflict.negative_share"] = self.negative / sum(self.counts)
        self.reset()
        return out
