"""Mixture-of-experts sharing. `mmoe` (Ma et al., 2018): shared experts, one softmax gate per task reading the
inputs; task t's tower sees Σ_e g_t,e(x) · expert_e(x). `omoe`: the same with one gate for every task (the
ablation that shows what per-task gates add)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .base import ARCHITECTURES, BuildContext, GateRecorder, Sharing, mlp, towers


class Experts(nn.Module):
    """`n` MLPs of the same shape over one input; output (batch, n, width)."""

    def __init__(self, n: int, in_dim: int, layers: list[int], dropout: float):
        super().__init__()
        stacks = [mlp(in_dim, layers, dropout) for _ in range(n)]
        self.experts = nn.ModuleList(s for s, _ in stacks)
        self.out_dim = stacks[0][1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([e(x) for e in self.experts], dim=1)


def mix(gate_logits: torch.Tensor, expert_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax gate (batch, n) over expert outputs (batch, n, width) → (mixture, gate weights)."""
    weights = torch.softmax(gate_logits, dim=-1)
    return torch.einsum("bn,bnd->bd", weights, expert_out), weights


class MoEOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experts: int = Field(4, ge=1, description="number of shared experts")
    expert_layers: list[int] | None = Field(None, description="hidden widths of each expert (default: "
                                            "model.bottom_layers)")


class _MoE(Sharing):
    Options = MoEOptions
    per_task_gates = True
    has_representation = True  # the experts' outputs

    def __init__(self, ctx: BuildContext):
        super().__init__()
        m = ctx.model
        opts = ctx.options(type(self))
        self.tasks = list(ctx.tasks)
        self.inputs = ctx.make_inputs()
        self.experts = Experts(opts.experts, self.inputs.out_dim, opts.expert_layers or m.bottom_layers, m.dropout)
        self.expert_names = [f"e{i}" for i in range(opts.experts)]
        gate_names = self.tasks if self.per_task_gates else ["all"]
        self.gates = nn.ModuleDict({g: nn.Linear(self.inputs.out_dim, opts.experts) for g in gate_names})
        self.towers, self.out_dims = towers(self.tasks, self.experts.out_dim, m)
        self.recorder = GateRecorder()

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.inputs.parameters()) + list(self.experts.parameters())

    def task_prefixes(self, task: str) -> list[str]:
        return [f"towers.{task}.", f"gates.{task}."]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.inputs(features)
        out = self.keep(self.experts(x))
        self.recorder.outputs("experts", self.expert_names, out)
        mixed = {}
        for name, gate in self.gates.items():
            mixed[name], weights = mix(gate(x), out)
            self.recorder.gate(name, self.expert_names, weights)
        return {t: self.towers[t](mixed[t if self.per_task_gates else "all"]) for t in self.tasks}


@ARCHITECTURES.register("mmoe", "multi-gate mixture of experts: shared experts, a softmax gate per task")
class MMoE(_MoE):
    pass


@ARCHITECTURES.register("omoe", "one-gate mixture of experts (the MMoE ablation)")
class OMoE(_MoE):
    per_task_gates = False
