"""Encoded samples (feature arrays, one target and one mask per task) and the mini-batches cut from them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..tasks import Task
from .preprocess import Preprocessor


@dataclass
class Encoded:
    """A split ready for the model. A row with a missing label stays: only its mask for that task is False."""

    features: dict[str, np.ndarray]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # task → group ids for per-group metrics

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))

    def take(self, idx: np.ndarray) -> Encoded:
        pick = lambda d: {k: v[idx] for k, v in d.items()}  # noqa: E731
        return Encoded(pick(self.features), pick(self.targets), pick(self.masks), pick(self.groups))


def encode(df: pd.DataFrame, preprocessor: Preprocessor, tasks: dict[str, Task], with_labels: bool = True,
           split: str | None = None) -> Encoded:
    """Features always; targets and masks for tasks whose label column is present (unseen labels masked)."""
    enc = Encoded(preprocessor.transform(df))
    if not with_labels:
        return enc
    for name, task in tasks.items():
        if task.column not in df.columns:
            continue
        labels = task.label_values(df)
        if task.text_feature is not None:
            text = preprocessor.config.feature_column(task.text_feature)
            task.check(labels, preprocessor.processors[task.text_feature].token_counts(df[text]))
        enc.targets[name], enc.masks[name] = task.encode(labels)
        unseen = task.unseen_labels(labels)
        if split is not None and unseen:
            task.unseen[split] = int(labels.astype("string").isin([str(u) for u in unseen]).sum())
        if task.group_column and task.group_column in df.columns:
            enc.groups[name] = df[task.group_column].to_numpy()
    return enc


def _trim(array: torch.Tensor) -> torch.Tensor:
    """Drop padding columns that every row of this batch has (token-id matrices only)."""
    if array.dtype != torch.int64 or array.dim() != 2:
        return array
    used = (array != 0).any(0).nonzero()
    width = int(used.max()) + 1 if len(used) else 1
    return array[:, :width]


def batches(enc: Encoded, batch_size: int, shuffle: bool = False, generator: np.random.Generator | None = None,
            device: torch.device | str = "cpu", limit: int | None = None) -> Iterator[dict]:
    """Mini-batches as {'features': {...}, 'targets': {...}, 'masks': {...}} of tensors on `device`."""
    n = len(enc)
    order = generator.permutation(n) if shuffle and generator is not None else np.arange(n)
    count = 0
    for start in range(0, n, batch_size):
        if limit is not None and count >= limit:
            return
        idx = order[start: start + batch_size]
        yield {
            "features": {k: _trim(torch.from_numpy(v[idx])).to(device) for k, v in enc.features.items()},
            "targets": {k: torch.from_numpy(v[idx]).to(device) for k, v in enc.targets.items()},
            "masks": {k: torch.from_numpy(v[idx]).to(device) for k, v in enc.masks.items()},
        }
        count += 1


def n_batches(n: int, batch_size: int, limit: int | None = None) -> int:
    total = (n + batch_size - 1) // batch_size
    return min(total, limit) if limit else total
