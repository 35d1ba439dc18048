"""Multiclass task: one logit per class, cross-entropy; accuracy and macro-F1; decodes to the class label."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from ..data.preprocess import as_keys
from ..errors import DataError
from .base import TASK_TYPES, Task


@TASK_TYPES.register("multiclass", "one logit per class, cross-entropy; accuracy, macro-F1")
class MulticlassTask(Task):
    metric_names = ("accuracy", "macro_f1", "top3_accuracy")

    def __init__(self, name: str, cfg: Any, column: str):
        super().__init__(name, cfg, column)
        self.classes: list[str] = []

    def fit(self, labels: pd.Series) -> None:
        counts = as_keys(labels).value_counts()
        self.classes = sorted(counts[counts >= self.cfg.min_count].index.tolist())
        if len(self.classes) < 2:
            raise DataError(f"tasks.{self.name}: column `{self.column}` has {len(self.classes)} class(es) in the "
                            f"training split; a multiclass task needs at least 2")
        self._index = {c: i for i, c in enumerate(self.classes)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.classes = state["classes"]
        self._index = {c: i for i, c in enumerate(self.classes)}

    def state(self) -> dict[str, Any]:
        return {"classes": self.classes}

    def unseen_labels(self, labels: pd.Series) -> list[Any]:
        keys = as_keys(labels).dropna()
        return sorted(set(keys.unique()) - set(self.classes))

    def encode(self, labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        ids = as_keys(labels).map(self._index)
        mask = ids.notna().to_numpy()
        return ids.fillna(0).to_numpy(dtype=np.int64), mask

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    def row_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, target)

    def predict(self, output: torch.Tensor) -> np.ndarray:
        return torch.softmax(output.float(), dim=-1).cpu().numpy()

    def metrics(self, target: np.ndarray, pred: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
        top = pred.argmax(axis=1)
        k = min(3, pred.shape[1])
        topk = np.argpartition(-pred, k - 1, axis=1)[:, :k]
        return {
            "accuracy": float((top == target).mean()),
            "macro_f1": float(f1_score(target, top, average="macro", labels=np.unique(target), zero_division=0)),
            "top3_accuracy": float((topk == target[:, None]).any(axis=1).mean()),
        }

    def decode(self, pred: np.ndarray) -> dict[str, Any]:
        top = pred.argmax(axis=1)
        return {self.name: np.asarray(self.classes, dtype=object)[top], f"{self.name}_probability": pred.max(axis=1)}
