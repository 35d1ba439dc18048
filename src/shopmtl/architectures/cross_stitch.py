"""Cross-stitch networks (Misra et al., 2016): one column per task (inputs and bottom layers); after the input
encoding and after every bottom layer, a learned cross-stitch unit mixes the columns: h̃_t = Σ_s α_ts · h_s.
A tower per task follows."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .base import ARCHITECTURES, BuildContext, Sharing, mlp, towers


class CrossStitchUnit(nn.Module):
    """A learned T×T mixing matrix, started at `keep` on the diagonal and the rest spread evenly."""

    def __init__(self, n_tasks: int, keep: float):
        super().__init__()
        alpha = torch.full((n_tasks, n_tasks), (1 - keep) / (n_tasks - 1)) if n_tasks > 1 else torch.ones(1, 1)
        if n_tasks > 1:
            alpha.fill_diagonal_(keep)
        self.alpha = nn.Parameter(alpha)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        """`stacked`: (tasks, batch, width) → the same shape, mixed across tasks."""
        return torch.einsum("ts,sbd->tbd", self.alpha, stacked)


@ARCHITECTURES.register("cross_stitch", "a column per task mixed at every layer by learned cross-stitch units")
class CrossStitch(Sharing):
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        stitch_init: float = Field(0.9, gt=0, le=1, description="initial weight of a column on itself in every "
                                   "cross-stitch unit (the rest is shared evenly by the other columns)")

    def __init__(self, ctx: BuildContext):
        super().__init__()
        m = ctx.model
        opts = ctx.options(CrossStitch)
        self.tasks = list(ctx.tasks)
        self.inputs = nn.ModuleDict({t: ctx.make_inputs() for t in self.tasks})
        width = next(iter(self.inputs.values())).out_dim
        layers: list[nn.ModuleDict] = []
        for size in m.bottom_layers:
            layers.append(nn.ModuleDict({t: mlp(width, [size], m.dropout)[0] for t in self.tasks}))
            width = size
        self.layers = nn.ModuleList(layers)
        self.stitches = nn.ModuleList(CrossStitchUnit(len(self.tasks), opts.stitch_init)
                                      for _ in range(len(m.bottom_layers) + 1))
        self.towers, self.out_dims = towers(self.tasks, width, m)

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.stitches.parameters())

    def task_prefixes(self, task: str) -> list[str]:
        return [f"inputs.{task}.", f"towers.{task}."] + [f"layers.{i}.{task}." for i in range(len(self.layers))]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = self.stitches[0](torch.stack([self.inputs[t](features) for t in self.tasks]))
        for layer, stitch in zip(self.layers, self.stitches[1:], strict=True):
            h = stitch(torch.stack([layer[t](h[i]) for i, t in enumerate(self.tasks)]))
        return {t: self.towers[t](h[i]) for i, t in enumerate(self.tasks)}
