"""The task interface: labels → (targets, mask), head, masked loss, metrics, decoding."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..registry import Registry

TASK_TYPES: Registry[type[Task]] = Registry("task type", "tasks.<name>.type")

LOWER_IS_BETTER = {"loss", "logloss", "rmse", "mae"}


class Task(ABC):
    """One prediction target. Subclasses set `metric_names` (first = primary) and implement the hooks."""

    metric_names: ClassVar[tuple[str, ...]] = ()
    text_feature: str | None = None  # a task whose head reads this text feature's per-token vectors (tagging)

    def __init__(self, name: str, cfg: Any, column: str):
        self.name, self.cfg, self.column = name, cfg, column
        self.unseen: dict[str, int] = {}  # split → rows whose label was unseen in training (masked)

    def bind(self, config: Any) -> None:
        """Learn what the task needs from the rest of the experiment config (e.g. its text feature's length)."""

    # ---- labels
    def label_values(self, df: pd.DataFrame) -> pd.Series:
        """The labels of a table's rows (the task's column; a task may derive them from several columns)."""
        return df[self.column]

    def fit(self, labels: pd.Series) -> None:
        """Learn what the labels can be from the training split."""

    @abstractmethod
    def encode(self, labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(targets, mask): mask is False where the label is missing; such rows add nothing to this task's loss."""

    def unseen_labels(self, labels: pd.Series) -> list[Any]:
        """Label values present here but unknown from training (classes, tags)."""
        return []

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what `fit` learned."""

    # ---- model
    @property
    def n_outputs(self) -> int:
        return 1

    def head(self, in_dim: int) -> nn.Module:
        return nn.Linear(in_dim, self.n_outputs)

    def loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The mean loss over rows with a label (0, with a gradient, where a batch has none)."""
        if not bool(mask.any()):
            return output.sum() * 0.0
        return self.row_loss(output[mask], target[mask])

    @abstractmethod
    def row_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss over rows that all have a label."""

    @abstractmethod
    def predict(self, output: torch.Tensor) -> np.ndarray:
        """Raw head output → predictions (probabilities, values) as numpy."""

    # ---- evaluation and decoding
    @abstractmethod
    def metrics(self, target: np.ndarray, pred: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
        """Metrics over labelled rows; `groups` (e.g. user ids) for per-group metrics."""

    @abstractmethod
    def decode(self, pred: np.ndarray) -> dict[str, Any]:
        """Predictions → output columns named `<task>` (and `<task>_<detail>`)."""

    @property
    def primary(self) -> str:
        return self.metric_names[0]

    @staticmethod
    def higher_is_better(metric: str) -> bool:
        return metric not in LOWER_IS_BETTER

    @property
    def group_column(self) -> str | None:
        return getattr(self.cfg, "group", None)


def build_task(name: str, cfg: Any, column: str) -> Task:
    return TASK_TYPES.get(cfg.type)(name, cfg, column)
