"""Inter-task affinity by look-ahead (Fifty et al., 2021, "Efficiently Identifying Task Groupings for Multi-Task
Learning"): every N training steps, for each task i, take the step the optimizer would take on the shared
parameters for task i's gradient alone, and see how every task j's loss on the same batch changes:

    Z[i → j] = 1 − L_j(θ after i's step) / L_j(θ)

Positive: a step for i helps j; negative: it hurts j. The step is AdamW's for that gradient alone (the optimizer's
learning rate and its second-moment estimates with this gradient folded in), without momentum, and
the losses are read in evaluation mode so dropout does not blur the change. Averaged per epoch into
`affinity.<i>.<j>` history columns, and over the whole run into a matrix (`metrics.json` → `affinity`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class AffinityMonitor:
    def __init__(self, tasks: list[str], params: list[nn.Parameter], every: int | None,
                 optimizer: torch.optim.Optimizer):
        self.tasks, self.every, self.optimizer = tasks, every, optimizer
        self.params = [p for p in params if p.requires_grad]
        k = len(tasks)
        self.total = torch.zeros(k, k, dtype=torch.float64)
        self.total_n = torch.zeros(k, k, dtype=torch.float64)
        self.reset()

    @property
    def active(self) -> bool:
        return bool(self.every) and bool(self.params) and len(self.tasks) > 1

    def reset(self) -> None:
        k = len(self.tasks)
        self.sums = torch.zeros(k, k, dtype=torch.float64)
        self.counts = torch.zeros(k, k, dtype=torch.float64)

    def due(self, global_step: int, epoch_step: int) -> bool:
        return self.active and (epoch_step == 1 or global_step % self.every == 0)

    def _state(self) -> tuple[torch.Tensor, float]:
        """AdamW's second-moment estimates of the shared parameters as a flat vector (zeros before its first
        step), and its step count."""
        parts, step = [], 0.0
        for p in self.params:
            state = self.optimizer.state.get(p, {})
            if "exp_avg_sq" in state:
                parts.append(state["exp_avg_sq"].reshape(-1))
                step = float(state["step"])
            else:
                parts.append(torch.zeros(p.numel(), dtype=p.dtype, device=p.device))
        return torch.cat(parts), step

    def step_for(self, grad: torch.Tensor, v: torch.Tensor, t: float) -> torch.Tensor:
        """The AdamW step for `grad` alone, without momentum: lr · g / (√v̂ + ε), where v̂ folds g² into the
        optimizer's second moments as its next step would (so a rarely updated weight cannot take a huge step;
        before any step this is lr · sign(g))."""
        group = self.optimizer.param_groups[0]
        lr, (_, beta2), eps = group["lr"], group.get("betas", (0.9, 0.999)), group.get("eps", 1e-8)
        v_hat = (beta2 * v + (1 - beta2) * grad * grad) / (1 - beta2 ** (t + 1))
        return lr * grad / (v_hat.sqrt() + eps)

    @torch.no_grad()
    def measure(self, grads: torch.Tensor, recompute: Callable[[], dict[str, torch.Tensor]]) -> None:
        """`grads`: [tasks, n] per-task gradients on `params`; `recompute`: the batch's task losses with the
        parameters as they stand (called once before and once per task's look-ahead step)."""
        before = recompute()
        base = torch.tensor([float(before[t]) for t in self.tasks], dtype=torch.float64)
        v, steps = self._state()
        saved = [p.detach().clone() for p in self.params]
        for i in range(len(self.tasks)):
            if not torch.any(grads[i] != 0):
                continue  # the task had no label in this batch
            step = self.step_for(grads[i], v.to(grads.device), steps)
            offset = 0
            for p in self.params:
                n = p.numel()
                p.sub_(step[offset: offset + n].view_as(p))
                offset += n
            after = recompute()
            for j, t in enumerate(self.tasks):
                if base[j] > 0 and torch.isfinite(base[j]):
                    self.sums[i, j] += 1.0 - float(after[t]) / float(base[j])
                    self.counts[i, j] += 1
            for p, s in zip(self.params, saved, strict=True):
                p.copy_(s)

    def columns(self) -> dict[str, float]:
        out = {f"affinity.{a}.{b}": float(self.sums[i, j] / self.counts[i, j])
               for i, a in enumerate(self.tasks) for j, b in enumerate(self.tasks) if self.counts[i, j]}
        self.total += self.sums
        self.total_n += self.counts
        self.reset()
        return out

    def matrix(self) -> dict[str, dict[str, float | None]] | None:
        """The whole run's mean affinity, `matrix[i][j]` = Z[i → j]; None when never measured."""
        if not self.total_n.any():
            return None
        return {a: {b: (float(self.total[i, j] / self.total_n[i, j]) if self.total_n[i, j] else None)
                    for j, b in enumerate(self.tasks)} for i, a in enumerate(self.tasks)}
