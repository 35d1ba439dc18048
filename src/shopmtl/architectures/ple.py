"""Progressive layered extraction (Tang et al., 2020). Each level (a CGC block) holds task-specific experts per task
and shared experts. Task t's gate mixes its own and the shared experts; a shared gate mixes all experts and feeds
the next level's shared experts. Levels stack; the last level's task mixtures go to the towers."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .base import ARCHITECTURES, BuildContext, GateRecorder, Sharing, towers
from .moe import Experts, mix


class _Level(nn.Module):
    def __init__(self, tasks: list[str], in_dim: int, n_task: int, n_shared: int, layers: list[int],
                 dropout: float, last: bool):
        super().__init__()
        self.tasks, self.n_task, self.n_shared = tasks, n_task, n_shared
        self.task_experts = nn.ModuleDict({t: Experts(n_task, in_dim, layers, dropout) for t in tasks})
        self.shared_experts = Experts(n_shared, in_dim, layers, dropout)
        self.out_dim = self.shared_experts.out_dim
        self.task_gates = nn.ModuleDict({t: nn.Linear(in_dim, n_task + n_shared) for t in tasks})
        self.shared_gate = None if last else nn.Linear(in_dim, len(tasks) * n_task + n_shared)

    def names(self, level: int, task: str | None) -> list[str]:
        own = [f"L{level}.{t}{i}" for t in ([task] if task else self.tasks) for i in range(self.n_task)]
        return own + [f"L{level}.shared{i}" for i in range(self.n_shared)]

    def forward(self, task_in: dict[str, torch.Tensor], shared_in: torch.Tensor, level: int,
                recorder: GateRecorder) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        shared_out = self.shared_experts(shared_in)
        own = {t: self.task_experts[t](task_in[t]) for t in self.tasks}
        task_out = {}
        for t in self.tasks:
            experts = torch.cat([own[t], shared_out], dim=1)
            task_out[t], weights = mix(self.task_gates[t](task_in[t]), experts)
            recorder.gate(f"L{level}.{t}", self.names(level, t), weights)
        everything = torch.cat([own[t] for t in self.tasks] + [shared_out], dim=1)
        recorder.outputs(f"L{level}", self.names(level, None), everything)
        if self.shared_gate is None:
            return task_out, None
        shared, weights = mix(self.shared_gate(shared_in), everything)
        recorder.gate(f"L{level}.shared", self.names(level, None), weights)
        return task_out, shared


@ARCHITECTURES.register("ple", "progressive layered extraction: task and shared experts in stacked CGC levels")
class PLE(Sharing):
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        levels: int = Field(2, ge=1, description="number of CGC levels")
        task_experts: int = Field(1, ge=1, description="experts of each task per level")
        shared_experts: int = Field(2, ge=1, description="shared experts per level")
        expert_layers: list[int] | None = Field(None, description="hidden widths of each expert (default: "
                                                "model.bottom_layers)")

    def __init__(self, ctx: BuildContext):
        super().__init__()
        m = ctx.model
        opts = ctx.options(PLE)
        self.tasks = list(ctx.tasks)
        self.inputs = ctx.make_inputs()
        width, levels = self.inputs.out_dim, []
        for i in range(opts.levels):
            level = _Level(self.tasks, width, opts.task_experts, opts.shared_experts,
                           opts.expert_layers or m.bottom_layers, m.dropout, last=i == opts.levels - 1)
            levels.append(level)
            width = level.out_dim
        self.levels = nn.ModuleList(levels)
        self.towers, self.out_dims = towers(self.tasks, width, m)
        self.recorder = GateRecorder()

    def shared_parameters(self) -> list[nn.Parameter]:
        params = list(self.inputs.parameters())
        for level in self.levels:
            params += list(level.shared_experts.parameters())
        return params

    def task_prefixes(self, task: str) -> list[str]:
        return [f"towers.{task}."] + [f"levels.{i}.task_{k}.{task}." for i in range(len(self.levels))
                                      for k in ("experts", "gates")]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.inputs(features)
        task_in, shared_in = {t: x for t in self.tasks}, x
        for i, level in enumerate(self.levels, 1):
            task_in, shared_in = level(task_in, shared_in, i, self.recorder)
        return {t: self.towers[t](task_in[t]) for t in self.tasks}
