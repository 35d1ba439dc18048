"""Single-task baseline: a separate model per task (its own inputs, bottom and tower), sharing nothing.
Trained in one run, each task keeps the weights of its own best validation epoch."""

from __future__ import annotations

import torch

from .base import ARCHITECTURES, BuildContext, Sharing, task_columns


@ARCHITECTURES.register("single", "no sharing: one separate model per task (the single-task baseline)")
class SingleTask(Sharing):
    independent = True

    def __init__(self, ctx: BuildContext):
        super().__init__()
        self.columns, self.out_dims = task_columns(ctx)

    def task_prefixes(self, task: str) -> list[str]:
        return [f"columns.{task}."]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {task: column(features) for task, column in self.columns.items()}
