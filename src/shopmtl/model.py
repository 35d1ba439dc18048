"""The multi-task model: inputs → sharing (the architecture) → one head per task."""

from __future__ import annotations

import torch
from torch import nn

from .architectures import ARCHITECTURES, BuildContext
from .config import ExperimentConfig
from .data.preprocess import Preprocessor
from .features import InputEncoder
from .tasks import Task


class MultiTaskModel(nn.Module):
    def __init__(self, config: ExperimentConfig, preprocessor: Preprocessor, tasks: dict[str, Task]):
        super().__init__()
        ctx = BuildContext(config, list(tasks), lambda: InputEncoder(config, preprocessor))
        self.sharing = ARCHITECTURES.get(config.model.architecture)(ctx)
        self.heads = nn.ModuleDict({name: task.head(self.sharing.out_dims[name]) for name, task in tasks.items()})

    @property
    def independent(self) -> bool:
        return self.sharing.independent

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        reps = self.sharing(features)
        return {name: head(reps[name]) for name, head in self.heads.items()}

    def task_keys(self, task: str) -> list[str]:
        """State-dict keys that belong to one task alone (its head, and its column where nothing is shared)."""
        prefixes = [f"heads.{task}."] + [f"sharing.{p}" for p in self.sharing.task_prefixes(task)]
        return [k for k in self.state_dict() if k.startswith(tuple(prefixes))]

    def shared_parameters(self) -> list[nn.Parameter]:
        return self.sharing.shared_parameters()
