"""Soft parameter sharing: one complete column per task (inputs, bottom, tower), tied by the penalty
λ·Σ_{i<j} ‖θ_i − θ_j‖² over matching parameters of every pair of columns (Duong et al., 2015)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .base import ARCHITECTURES, BuildContext, Sharing, task_columns


def pairwise_penalty(columns: list[nn.Module]) -> torch.Tensor:
    """Σ_{i<j} ‖θ_i − θ_j‖² summed over the matching parameters of the columns.

    Uses Σ_{i<j} ‖a_i − a_j‖² = T·Σ_i ‖a_i − ā‖² (ā the mean column): one pass per parameter whatever the
    number of tasks, and exactly 0 for identical columns."""
    named = [dict(c.named_parameters()) for c in columns]
    total = next(iter(named[0].values())).new_zeros(())
    for key in named[0]:
        stack = torch.stack([n[key] for n in named])
        total = total + len(named) * (stack - stack.mean(0)).pow(2).sum()
    return total


@ARCHITECTURES.register("soft", "soft sharing: a column per task, tied by λ·Σ‖θ_i − θ_j‖²")
class SoftSharing(Sharing):
    # no parameter serves two tasks (the penalty ties the columns in training only), so each task may keep the
    # weights of its own best epoch: its column and head restored together give exactly that epoch's outputs
    independent = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        penalty: float = Field(1e-3, ge=0, description="λ of the L2 penalty between every pair of task columns")
        same_init: bool = Field(True, description="start every column from the same weights (tied at step 0)")

    def __init__(self, ctx: BuildContext):
        super().__init__()
        self.opts = ctx.options(SoftSharing)
        self.columns, self.out_dims = task_columns(ctx)
        if self.opts.same_init:
            first = next(iter(self.columns.values())).state_dict()
            for column in self.columns.values():
                column.load_state_dict(first)

    def task_prefixes(self, task: str) -> list[str]:
        return [f"columns.{task}."]

    def penalty(self) -> torch.Tensor:
        return self.opts.penalty * pairwise_penalty(list(self.columns.values()))

    def regularisers(self, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"soft_penalty": self.penalty()} if self.opts.penalty > 0 and len(self.columns) > 1 else {}

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {task: column(features) for task, column in self.columns.items()}
