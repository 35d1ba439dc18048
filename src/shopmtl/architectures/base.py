"""The sharing interface: features → one representation per task; which parameters are shared."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import nn

from ..config import ExperimentConfig, ModelConfig
from ..errors import ConfigError
from ..features import InputEncoder
from ..registry import NoOptions, Registry, parse_options


@dataclass
class BuildContext:
    config: ExperimentConfig
    tasks: list[str]
    make_inputs: Callable[[], InputEncoder]  # a fresh input encoder (an architecture may build one per task)

    @property
    def model(self) -> ModelConfig:
        return self.config.model

    def options(self, cls: type[Sharing]) -> Any:
        """The architecture's typed `model:` options."""
        return cls.Options.model_validate(self.model.options)


def mlp(in_dim: int, layers: list[int], dropout: float) -> tuple[nn.Sequential, int]:
    """Linear → ReLU → Dropout per layer width; returns the stack and its output width."""
    blocks: list[nn.Module] = []
    for width in layers:
        blocks += [nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(dropout)]
        in_dim = width
    return nn.Sequential(*blocks), in_dim


def towers(tasks: list[str], in_dim: int | dict[str, int], m: ModelConfig) -> tuple[nn.ModuleDict, dict[str, int]]:
    """One tower MLP (`model.tower_layers`) per task; `in_dim` is one width or a width per task."""
    stacks, widths = {}, {}
    for task in tasks:
        width = in_dim[task] if isinstance(in_dim, dict) else in_dim
        stacks[task], widths[task] = mlp(width, m.tower_layers, m.dropout)
    return nn.ModuleDict(stacks), widths


def task_columns(ctx: BuildContext) -> tuple[nn.ModuleDict, dict[str, int]]:
    """A complete column per task: its own input encoder, then `bottom_layers + tower_layers`."""
    m = ctx.model
    columns, widths = {}, {}
    for task in ctx.tasks:
        inputs = ctx.make_inputs()
        stack, widths[task] = mlp(inputs.out_dim, m.bottom_layers + m.tower_layers, m.dropout)
        columns[task] = nn.Sequential(inputs, stack)
    return nn.ModuleDict(columns), widths


class GateRecorder:
    """Collects, while `active`, what gated architectures route: the mean gate weight per expert of each gate,
    and how alike the experts' outputs are (centred cosine similarity of each pair over the batch)."""

    def __init__(self) -> None:
        self.active = False
        self.reset()

    def reset(self) -> None:
        self.gates: dict[str, tuple[list[str], torch.Tensor, int]] = {}
        self.similarity: dict[str, tuple[list[str], torch.Tensor, int]] = {}

    def gate(self, name: str, experts: list[str], weights: torch.Tensor) -> None:
        if not self.active:
            return
        _, total, n = self.gates.get(name, (experts, torch.zeros(len(experts)), 0))
        self.gates[name] = (experts, total + weights.detach().float().sum(0).cpu(), n + weights.shape[0])

    def outputs(self, group: str, experts: list[str], outs: torch.Tensor) -> None:
        """`outs`: (batch, experts, width)."""
        if not self.active or outs.shape[0] < 2:
            return
        x = outs.detach().float()
        x = x - x.mean(0, keepdim=True)
        flat = x.permute(1, 0, 2).reshape(x.shape[1], -1)
        flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
        _, total, n = self.similarity.get(group, (experts, torch.zeros(len(experts), len(experts)), 0))
        self.similarity[group] = (experts, total + (flat @ flat.T).cpu(), n + 1)

    def summary(self) -> dict[str, Any]:
        return {
            "gates": {g: {"experts": e, "weights": (t / max(n, 1)).tolist()} for g, (e, t, n) in self.gates.items()},
            "similarity": {g: {"experts": e, "matrix": (t / max(n, 1)).tolist()}
                           for g, (e, t, n) in self.similarity.items()},
        }


class Sharing(nn.Module):
    """Base of every architecture: `forward(features) → {task: representation}` with widths in `out_dims`."""

    Options: ClassVar[type[BaseModel]] = NoOptions  # the extra `model:` options it accepts (typed)
    independent: ClassVar[bool] = False  # True: tasks share nothing, so each may keep its own best epoch
    uses_depth: ClassVar[bool] = False  # True: reads `tasks.<name>.depth`
    recorder: GateRecorder | None = None  # gated architectures record their routing here
    has_representation: ClassVar[bool] = False  # True: `keep(...)` stores the activation every task path crosses
    representation: torch.Tensor | None = None

    def keep(self, rep: torch.Tensor) -> torch.Tensor:
        """Remember the shared representation of a training pass (gradient balancers read its gradients)."""
        self.representation = rep if self.training and torch.is_grad_enabled() else None
        return rep

    out_dims: dict[str, int]

    @classmethod
    def check_options(cls, options: dict[str, Any], config: ExperimentConfig) -> BaseModel:
        opts = parse_options(options, cls.Options, "model", f"architecture `{config.model.architecture}`",
                             set(ModelConfig.model_fields))
        if not cls.uses_depth:
            for name, task in config.tasks.items():
                if task.depth is not None:
                    raise ConfigError(f"tasks.{name}.depth: only the `hierarchical` architecture reads a task's "
                                      f"depth; remove it or set model.architecture=hierarchical")
        return opts

    def check_data(self, masks: dict[str, Any]) -> list[str]:
        """Notes on what the training labels (`masks`: task → which rows are labelled) mean for this
        architecture, logged and kept with the run's metrics."""
        return []

    def regularisers(self, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Extra training losses of the architecture for the last forward pass (already weighted); `masks`: which
        rows of the batch carry each task's label."""
        return {}

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters that every task's loss reaches (what gradient balancers manipulate)."""
        return []

    def task_prefixes(self, task: str) -> list[str]:
        """State-dict prefixes (within this module) owned by one task alone."""
        return []

    def task_inputs(self, task: str) -> InputEncoder:
        """The input encoder on a task's path: its own where it has one, else the shared one (a tagging head
        reads the per-token vectors this encoder leaves in `sequences`)."""
        encoders = [(n, m) for n, m in self.named_modules() if isinstance(m, InputEncoder)]
        owned = [m for n, m in encoders if (n + ".").startswith(tuple(self.task_prefixes(task)))]
        return (owned or [m for _, m in encoders])[0]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise TypeError(f"{type(self).__name__} must define forward")


ARCHITECTURES: Registry[type[Sharing]] = Registry("architecture", "model.architecture")
