"""Adversarial shared-private multi-task learning (Liu, Qiu and Huang, 2017, "ASP-MTL").

A shared encoder and one private encoder per task each read the inputs; task t's tower sees [shared ‖ private_t].
A task discriminator tries to tell, from the shared features, which task a row is labelled for; it reads them
through a gradient reversal layer, so the shared encoder is trained to fool it and keeps task-invariant features.
An orthogonality penalty ‖Sᵀ P_t‖²_F pushes the private features away from the shared ones.

Where every row carries every task's label, the discriminator cannot tell the tasks apart by construction and the
adversarial term has nothing to remove; the shared-private split and the orthogonality penalty still act.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .base import ARCHITECTURES, BuildContext, Sharing, mlp, towers


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # noqa: ANN001
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient flowing back is multiplied by −scale."""
    return _Reverse.apply(x, scale)


def orthogonality(shared: torch.Tensor, private: torch.Tensor) -> torch.Tensor:
    """‖Sᵀ P‖²_F over the batch, after centring each feature and scaling each row to unit length
    (so the penalty does not grow with batch size or feature scale)."""
    s = F.normalize(shared - shared.mean(0, keepdim=True), dim=1)
    p = F.normalize(private - private.mean(0, keepdim=True), dim=1)
    return (s.T @ p).pow(2).sum() / shared.shape[0]


@ARCHITECTURES.register("adversarial", "shared-private encoders; task discriminator through gradient reversal; "
                                       "orthogonality penalty (ASP-MTL)")
class Adversarial(Sharing):
    has_representation = True  # the shared encoder's features

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        adversarial_weight: float = Field(0.05, ge=0, description="weight of the task discriminator's loss")
        orthogonality_weight: float = Field(0.01, ge=0, description="weight of the shared/private orthogonality "
                                            "penalty")
        discriminator_layers: list[int] = Field(default_factory=lambda: [64], description="hidden widths of "
                                                "the task discriminator")

    def __init__(self, ctx: BuildContext):
        super().__init__()
        m = ctx.model
        self.opts = ctx.options(Adversarial)
        self.tasks = list(ctx.tasks)
        self.shared_inputs = ctx.make_inputs()
        self.shared, width = mlp(self.shared_inputs.out_dim, m.bottom_layers, m.dropout)
        private = {}
        for task in ctx.tasks:
            inputs = ctx.make_inputs()
            stack, _ = mlp(inputs.out_dim, m.bottom_layers, m.dropout)
            private[task] = nn.Sequential(inputs, stack)
        self.private = nn.ModuleDict(private)
        hidden, hidden_width = mlp(width, self.opts.discriminator_layers, m.dropout)
        self.discriminator = nn.Sequential(hidden, nn.Linear(hidden_width, len(ctx.tasks)))
        self.towers, self.out_dims = towers(ctx.tasks, 2 * width, m)
        self._last: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.shared_inputs.parameters()) + list(self.shared.parameters())

    def task_prefixes(self, task: str) -> list[str]:
        return [f"private.{task}.", f"towers.{task}."]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        shared = self.keep(self.shared(self.shared_inputs(features)))
        private = {task: enc(features) for task, enc in self.private.items()}
        self._last = (shared, private) if self.training else None
        return {task: self.towers[task](torch.cat([shared, private[task]], dim=-1)) for task in self.tasks}

    def check_data(self, masks: dict[str, Any]) -> list[str]:
        labelled = np.stack([np.asarray(masks[t], dtype=bool) for t in self.tasks], axis=1)
        if len(self.tasks) > 1 and labelled.all():
            return ["adversarial: every training row is labelled for every task, so the task discriminator cannot "
                    "tell the tasks apart and its adversarial term removes nothing; the shared-private split and the "
                    "orthogonality penalty still act (the adversarial term matters when tasks label different rows)"]
        return []

    def discriminator_loss(self, shared: torch.Tensor, masks: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the discriminator over every (row, task the row is labelled for) pair, with the
        shared features read through gradient reversal."""
        logits = self.discriminator(reverse_gradient(shared))
        labelled = torch.stack([masks[t] for t in self.tasks], dim=1).float()  # rows × tasks
        per_pair = -F.log_softmax(logits, dim=1) * labelled
        return per_pair.sum() / labelled.sum().clamp_min(1.0)

    def regularisers(self, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self._last is None:
            return {}
        shared, private = self._last
        self._last = None
        out = {}
        if self.opts.adversarial_weight > 0 and len(self.tasks) > 1:
            out["adversarial"] = self.opts.adversarial_weight * self.discriminator_loss(shared, masks)
        if self.opts.orthogonality_weight > 0:
            out["orthogonality"] = self.opts.orthogonality_weight * sum(
                orthogonality(shared, p) for p in private.values())
        return out
