"""Multilabel task: one logit per label, BCE per label; micro- and macro-F1 at threshold 0.5."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from ..errors import DataError
from .base import TASK_TYPES, Task


@TASK_TYPES.register("multilabel", "one logit per label, BCE per label; micro/macro-F1 (labels as 'a,b,c')")
class MultilabelTask(Task):
    metric_names = ("micro_f1", "macro_f1", "subset_accuracy")

    def __init__(self, name: str, cfg: Any, column: str):
        super().__init__(name, cfg, column)
        self.labels: list[str] = []

    def _split(self, labels: pd.Series) -> list[list[str] | None]:
        out: list[list[str] | None] = []
        for v in labels.tolist():
            if isinstance(v, list | tuple | np.ndarray):
                out.append([str(t).strip() for t in v])
            elif v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
                out.append(None)
            else:
                out.append([t.strip() for t in str(v).split(self.cfg.separator) if t.strip()])
        return out

    def fit(self, labels: pd.Series) -> None:
        counts = Counter(t for row in self._split(labels) if row for t in row)
        self.labels = sorted(t for t, c in counts.items() if c >= self.cfg.min_count)
        if not self.labels:
            raise DataError(f"tasks.{self.name}: column `{self.column}` has no labels in the training split")
        self._index = {t: i for i, t in enumerate(self.labels)}

    def state(self) -> dict[str, Any]:
        return {"labels": self.labels}

    def load_state(self, state: dict[str, Any]) -> None:
        self.labels = state["labels"]
        self._index = {t: i for i, t in enumerate(self.labels)}

    def unseen_labels(self, labels: pd.Series) -> list[Any]:
        seen = {t for row in self._split(labels) if row for t in row}
        return sorted(seen - set(self.labels))

    def encode(self, labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        rows = self._split(labels)
        target = np.zeros((len(rows), len(self.labels)), dtype=np.float32)
        mask = np.zeros(len(rows), dtype=bool)
        for i, row in enumerate(rows):
            if row is None:
                continue
            mask[i] = True
            for t in row:
                j = self._index.get(t)
                if j is not None:
                    target[i, j] = 1.0
        return target, mask

    @property
    def n_outputs(self) -> int:
        return len(self.labels)

    def row_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(output, target)

    def predict(self, output: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(output.float()).cpu().numpy()

    def metrics(self, target: np.ndarray, pred: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
        hit = (pred >= 0.5).astype(int)
        truth = target.astype(int)
        return {
            "micro_f1": float(f1_score(truth, hit, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(truth, hit, average="macro", zero_division=0)),
            "subset_accuracy": float((hit == truth).all(axis=1).mean()),
        }

    def decode(self, pred: np.ndarray) -> dict[str, Any]:
        names = np.asarray(self.labels, dtype=object)
        return {self.name: [",".join(names[row >= 0.5]) for row in pred]}
