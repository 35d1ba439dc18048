"""Single-task baseline: a separate model per task (its own inputs, bottom and tower), sharing nothing.
Trained in one run, each task keeps the weights of its own best validation epoch."""

from __future__ import annotations

import torch
from torch import nn

from .base import ARCHITECTURES, BuildContext, Sharing, mlp


@ARCHITECTURES.register("single", "no sharing: one separate model per task (the single-task baseline)")
class SingleTask(Sharing):
    independent = True

    def __init__(self, ctx: BuildContext):
        super().__init__()
        m = ctx.model
        self.out_dims = {}
        columns = {}
        for task in ctx.tasks:
            inputs = ctx.make_inputs()
            bottom, width = mlp(inputs.out_dim, m.bottom_layers + m.tower_layers, m.dropout)
            columns[task] = nn.Sequential(inputs, bottom)
            self.out_dims[task] = width
        self.columns = nn.ModuleDict(columns)

    def task_prefixes(self, task: str) -> list[str]:
        return [f"columns.{task}."]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {task: column(features) for task, column in self.columns.items()}
