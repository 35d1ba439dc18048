"""Hierarchical sharing (Søgaard and Goldberg, 2016; Hashimoto et al., 2017): one shared trunk of bottom layers,
and each task supervised at its own depth of it (`tasks.<name>.depth`: 0 = the input encoding, 1 = after the
first bottom layer, …; default the top). Low-level tasks read early layers, high-level tasks the top."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import ExperimentConfig
from ..errors import ConfigError
from .base import ARCHITECTURES, BuildContext, Sharing, mlp, towers


@ARCHITECTURES.register("hierarchical", "one shared trunk; each task's tower reads the trunk at its own "
                                        "`tasks.<name>.depth`")
class Hierarchical(Sharing):
    uses_depth = True
    has_representation = True  # the trunk at the shallowest task depth

    @classmethod
    def check_options(cls, options: dict[str, Any], config: ExperimentConfig) -> Any:
        opts = super().check_options(options, config)
        top = len(config.model.bottom_layers)
        for name, task in config.tasks.items():
            if task.depth is not None and task.depth > top:
                raise ConfigError(f"tasks.{name}.depth: {task.depth} is deeper than the trunk (model.bottom_layers "
                                  f"has {top} layers); use 0–{top} or add layers")
        return opts

    def __init__(self, ctx: BuildContext):
        super().__init__()
        m = ctx.model
        self.inputs = ctx.make_inputs()
        width, widths, layers = self.inputs.out_dim, [self.inputs.out_dim], []
        for size in m.bottom_layers:
            layer, width = mlp(width, [size], m.dropout)
            layers.append(layer)
            widths.append(width)
        self.trunk = nn.ModuleList(layers)
        top = len(m.bottom_layers)
        self.depth = {t: (ctx.config.tasks[t].depth if ctx.config.tasks[t].depth is not None else top)
                      for t in ctx.tasks}
        self.towers, self.out_dims = towers(ctx.tasks, {t: widths[d] for t, d in self.depth.items()}, m)
        self.needed = max(self.depth.values())

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.inputs.parameters()) + list(self.trunk[: min(self.depth.values())].parameters())

    def task_prefixes(self, task: str) -> list[str]:
        return [f"towers.{task}."]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        states = [self.inputs(features)]
        for layer in self.trunk[: self.needed]:
            states.append(layer(states[-1]))
        self.keep(states[min(self.depth.values())])
        return {t: self.towers[t](states[d]) for t, d in self.depth.items()}
