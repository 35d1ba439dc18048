"""Encoded samples (feature arrays, one target and one mask per task) and the mini-batches cut from them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..tasks import Task
from .preprocess import WEIGHT, Preprocessor


@dataclass
class Encoded:
    """A split ready for the model. A row with a missing label stays: only its mask for that task is False."""

    features: dict[str, np.ndarray]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # task → group ids for per-group metrics
    text: list[str] = field(default_factory=list)  # the keys of text features' token (or piece) ids

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))

    def take(self, idx: np.ndarray) -> Encoded:
        pick = lambda d: {k: v[idx] for k, v in d.items()}  # noqa: E731
        return Encoded(pick(self.features), pick(self.targets), pick(self.masks), pick(self.groups), self.text)


def encode(df: pd.DataFrame, preprocessor: Preprocessor, tasks: dict[str, Task], with_labels: bool = True,
           split: str | None = None) -> Encoded:
    """Features always; targets and masks for tasks whose label column is present (unseen labels masked)."""
    enc = Encoded(preprocessor.transform(df), text=[n for n, f in preprocessor.config.features.items()
                                                  if f.type == "text"])
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


def _width(ids: np.ndarray) -> int:
    """Columns up to the last one that some row of this batch uses (id 0 = padding); at least 1."""
    used = np.flatnonzero((ids != 0).any(0))
    return int(used[-1]) + 1 if len(used) else 1


def batch_features(features: dict[str, np.ndarray], idx: np.ndarray, device: torch.device | str
                   ) -> dict[str, torch.Tensor]:
    """The rows `idx` of every feature array as tensors, id matrices cut to this batch's widest row (dynamic
    padding); a sparse feature's weights (`<name>@w`) are cut with its ids."""
    picked = {k: v[idx] for k, v in features.items()}
    widths = {k: _width(v) for k, v in picked.items() if v.dtype == np.int64 and v.ndim == 2}
    out = {}
    for k, v in picked.items():
        base = k[: -len(WEIGHT)] if k.endswith(WEIGHT) else k
        if base in widths:
            v = v[:, : widths[base]]
        out[k] = torch.from_numpy(np.ascontiguousarray(v)).to(device)
    return out


def text_lengths(enc: Encoded) -> np.ndarray:
    """Per row, the most tokens any of its text features holds (what dynamic padding pads to); 0 without
    text."""
    mats = [enc.features[k] for k in enc.text if k in enc.features]
    if not mats:
        return np.zeros(len(enc), dtype=np.int64)
    return np.max(np.stack([(m != 0).sum(1) for m in mats], axis=1), axis=1)


def batch_order(n: int, batch_size: int, generator: np.random.Generator, lengths: np.ndarray | None = None,
                chunk: int = 50) -> list[np.ndarray]:
    """Shuffled mini-batches of row indices. With `lengths`: the shuffled rows are cut into chunks of `chunk`
    batches, each chunk sorted by length and cut into batches, and the batches shuffled (rows of like length
    share a batch, so little padding; the order still changes every epoch)."""
    order = generator.permutation(n)
    if lengths is None:
        return [order[i: i + batch_size] for i in range(0, n, batch_size)]
    out = []
    span = batch_size * chunk
    for start in range(0, n, span):
        part = order[start: start + span]
        part = part[np.argsort(lengths[part], kind="stable")]
        out += [part[i: i + batch_size] for i in range(0, len(part), batch_size)]
    return [out[i] for i in generator.permutation(len(out))]


TEXT_INFERENCE_BATCH = 256  # rows per batch where there is text: larger batches ran slower on the CPU


def inference_order(enc: Encoded, batch_size: int) -> list[np.ndarray]:
    """Batches of row indices for a pass without gradients: rows sorted by text length where there is text
    (each batch pads only to its own longest row; at most 256 rows, which ran 2.6× faster than 4096 on a frozen
    MiniLM), else in row order."""
    n = len(enc)
    lengths = text_lengths(enc)
    if lengths.any():
        order = np.argsort(lengths, kind="stable")
        batch_size = min(batch_size, TEXT_INFERENCE_BATCH)
    else:
        order = np.arange(n)
    return [order[i: i + batch_size] for i in range(0, n, batch_size)]


def batches(enc: Encoded, batch_size: int, shuffle: bool = False, generator: np.random.Generator | None = None,
            device: torch.device | str = "cpu", limit: int | None = None,
            lengths: np.ndarray | None = None, order: list[np.ndarray] | None = None) -> Iterator[dict]:
    """Mini-batches as {'features': {...}, 'targets': {...}, 'masks': {...}, 'index': rows} of tensors on
    `device`; shuffled with `generator` (grouped by `lengths` when given), in the given `order`, or in row
    order."""
    n = len(enc)
    if order is not None:
        pass
    elif shuffle and generator is not None:
        order = batch_order(n, batch_size, generator, lengths)
    else:
        order = [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    for count, idx in enumerate(order):
        if limit is not None and count >= limit:
            return
        yield {
            "features": batch_features(enc.features, idx, device),
            "targets": {k: torch.from_numpy(v[idx]).to(device) for k, v in enc.targets.items()},
            "masks": {k: torch.from_numpy(v[idx]).to(device) for k, v in enc.masks.items()},
            "index": idx,
        }


def n_batches(n: int, batch_size: int, limit: int | None = None) -> int:
    total = (n + batch_size - 1) // batch_size
    return min(total, limit) if limit else total
