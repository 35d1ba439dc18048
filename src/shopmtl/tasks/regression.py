"""Regression task: one output on a standardised target (optionally log1p first), MSE or Huber loss;
RMSE, MAE and R² on the task's scale (after its transform); decodes back to the original units."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import DataError
from .base import TASK_TYPES, Task


@TASK_TYPES.register("regression", "one output, MSE or Huber on a standardised (optionally log1p) target; RMSE, MAE")
class RegressionTask(Task):
    metric_names = ("rmse", "mae", "r2")

    def __init__(self, name: str, cfg: Any, column: str):
        super().__init__(name, cfg, column)
        self.mean, self.std = 0.0, 1.0

    def _values(self, labels: pd.Series) -> np.ndarray:
        values = pd.to_numeric(labels, errors="coerce")
        bad = values.isna() & labels.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"tasks.{self.name}: column `{self.column}` row {row} holds {labels.iloc[row]!r}, "
                            f"not a number")
        v = values.to_numpy(dtype=np.float64, na_value=np.nan)
        if self.cfg.transform == "log1p":
            if np.nanmin(v, initial=0) < 0:
                raise DataError(f"tasks.{self.name}: log1p needs values ≥ 0 but `{self.column}` has negatives; "
                                f"set tasks.{self.name}.transform: none")
            v = np.log1p(v)
        return v

    def fit(self, labels: pd.Series) -> None:
        v = self._values(labels)
        v = v[np.isfinite(v)]
        if len(v) == 0:
            raise DataError(f"tasks.{self.name}: column `{self.column}` has no values in the training split")
        self.mean = float(v.mean())
        self.std = float(v.std()) if v.std() > 0 else 1.0

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}

    def load_state(self, state: dict[str, Any]) -> None:
        self.mean, self.std = state["mean"], state["std"]

    def encode(self, labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        v = self._values(labels)
        mask = np.isfinite(v)
        return np.where(mask, (v - self.mean) / self.std, 0.0).astype(np.float32), mask

    def row_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = output.squeeze(-1)
        return F.huber_loss(out, target) if self.cfg.loss == "huber" else F.mse_loss(out, target)

    def predict(self, output: torch.Tensor) -> np.ndarray:
        """On the task's scale (after its transform)."""
        return output.squeeze(-1).float().cpu().numpy() * self.std + self.mean

    def metrics(self, target: np.ndarray, pred: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
        y = target * self.std + self.mean
        err = pred - y
        var = float(((y - y.mean()) ** 2).mean())
        return {
            "rmse": float(np.sqrt((err**2).mean())),
            "mae": float(np.abs(err).mean()),
            "r2": float(1 - (err**2).mean() / var) if var > 0 else float("nan"),
        }

    def decode(self, pred: np.ndarray) -> dict[str, Any]:
        return {self.name: np.expm1(pred) if self.cfg.transform == "log1p" else pred}
