"""Gradient conflict monitor: every N training steps (and at each epoch's first), the pairwise cosine similarity
of the tasks' gradients on the shared parameters; averaged per epoch into `conflict.<a>.<b>` history columns, with
`conflict.negative_share`, the share of measured pairs pointing against each other; and over the whole run into
the gradient-cosine matrix (`metrics.json` → `gradient_cosine`)."""

from __future__ import annotations

from itertools import combinations

import torch

from ..balancing.base import task_gradients


class ConflictMonitor:
    def __init__(self, tasks: list[str], params: list[torch.nn.Parameter], every: int | None):
        self.tasks, self.params, self.every = tasks, [p for p in params if p.requires_grad], every
        self.pairs = list(combinations(range(len(tasks)), 2))
        self.total = [0.0] * len(self.pairs)
        self.total_n = [0] * len(self.pairs)
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

    def gradients(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """[tasks, n] per-task gradients on the shared parameters, before the backward pass (the graph is kept)."""
        return task_gradients([losses[t] for t in self.tasks], self.params)

    def measure(self, losses: dict[str, torch.Tensor]) -> None:
        self.record(self.gradients(losses))

    def record(self, grads: torch.Tensor) -> None:
        """Tasks without a label in the batch (a zero gradient) are left out."""
        grads = grads.float()
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
        for k in range(len(self.pairs)):
            self.total[k] += self.sums[k]
            self.total_n[k] += self.counts[k]
        self.reset()
        return out

    def matrix(self) -> dict[str, dict[str, float | None]] | None:
        """The whole run's mean cosine per pair of tasks (symmetric, 1 on the diagonal); None when never measured."""
        if not any(self.total_n):
            return None
        out: dict[str, dict[str, float | None]] = {a: {b: (1.0 if a == b else None) for b in self.tasks}
                                                   for a in self.tasks}
        for k, (i, j) in enumerate(self.pairs):
            if self.total_n[k]:
                out[self.tasks[i]][self.tasks[j]] = out[self.tasks[j]][self.tasks[i]] = self.total[k] / self.total_n[k]
        return out
