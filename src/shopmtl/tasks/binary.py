"""Binary task: one logit, BCE loss; AUC, log-loss, accuracy, and GAUC when a group column is set."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss, roc_auc_score

from ..errors import DataError
from .base import TASK_TYPES, Task

TRUE = {"1", "true", "yes", "y", "t", "1.0"}
FALSE = {"0", "false", "no", "n", "f", "0.0"}


def safe_auc(target: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present."""
    return float(roc_auc_score(target, score)) if len(np.unique(target)) == 2 else float("nan")


def gauc(target: np.ndarray, score: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC: per-group AUC averaged with group sizes as weights, over groups holding both classes."""
    frame = pd.DataFrame({"y": target, "s": score, "g": groups})
    total, weight = 0.0, 0
    for _, g in frame.groupby("g", sort=False):
        if 0 < g["y"].sum() < len(g):
            total += roc_auc_score(g["y"], g["s"]) * len(g)
            weight += len(g)
    return total / weight if weight else float("nan")


@TASK_TYPES.register("binary", "one logit, BCE; AUC, log-loss, accuracy, GAUC by a group column")
class BinaryTask(Task):
    metric_names = ("auc", "logloss", "accuracy", "gauc")

    def encode(self, labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        mask = np.array(labels.notna(), dtype=bool)
        keys = labels.astype("string").str.strip().str.lower()
        if self.cfg.positive is not None:
            target = (keys == str(self.cfg.positive).strip().lower()).fillna(False).to_numpy(dtype=np.float32)
            return target, mask
        known = keys.isin(TRUE | FALSE) | labels.isna()
        if not known.all():
            bad = sorted(keys[~known].unique().tolist())[:5]
            raise DataError(f"tasks.{self.name}: column `{self.column}` holds {bad}, not 0/1 or true/false; "
                            f"set tasks.{self.name}.positive to the value that means 1")
        return keys.isin(TRUE).to_numpy(dtype=np.float32), mask

    def row_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(output.squeeze(-1), target)

    def predict(self, output: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(output.squeeze(-1).float()).cpu().numpy()

    def metrics(self, target: np.ndarray, pred: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
        p = np.clip(pred, 1e-7, 1 - 1e-7)
        out = {
            "auc": safe_auc(target, p),
            "logloss": float(log_loss(target, p, labels=[0, 1])),
            "accuracy": float(((p >= 0.5) == (target >= 0.5)).mean()),
            "positive_rate": float(target.mean()),
        }
        if groups is not None:
            out["gauc"] = gauc(target, p, groups)
        return out

    def decode(self, pred: np.ndarray) -> dict[str, Any]:
        return {self.name: pred}
