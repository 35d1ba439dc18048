"""Hard parameter sharing: one input encoder and bottom MLP for all tasks, then a small tower per task."""

from __future__ import annotations

import torch
from torch import nn

from .base import ARCHITECTURES, BuildContext, Sharing, mlp, towers


@ARCHITECTURES.register("shared_bottom", "hard sharing: shared inputs + bottom MLP, one tower per task")
class SharedBottom(Sharing):
    has_representation = True

    def __init__(self, ctx: BuildContext):
        super().__init__()
        m = ctx.model
        self.inputs = ctx.make_inputs()
        self.bottom, width = mlp(self.inputs.out_dim, m.bottom_layers, m.dropout)
        self.towers, self.out_dims = towers(ctx.tasks, width, m)

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.inputs.parameters()) + list(self.bottom.parameters())

    def task_prefixes(self, task: str) -> list[str]:
        return [f"towers.{task}."]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        shared = self.keep(self.bottom(self.inputs(features)))
        return {task: tower(shared) for task, tower in self.towers.items()}
