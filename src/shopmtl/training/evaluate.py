"""Evaluation passes: run the model over encoded samples, gather predictions and per-task losses and metrics."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..data.batching import Encoded, batches, inference_order
from ..tasks import Task


@torch.no_grad()
def predict_batches(model: torch.nn.Module, tasks: dict[str, Task], enc: Encoded, batch_size: int,
                    device: torch.device, conditional: bool = False) -> Iterator[tuple[dict, dict[str, torch.Tensor]]]:
    """(batch, outputs) over every row, in batches of rows of like text length (`batch['index']` says which
    rows; `in_row_order` puts gathered results back)."""
    model.eval()
    for batch in batches(enc, batch_size, device=device, order=inference_order(enc, batch_size)):
        yield batch, (model(batch["features"], conditional=True) if conditional else model(batch["features"]))


def in_row_order(parts: list[np.ndarray], index: list[np.ndarray]) -> np.ndarray:
    """Per-batch results gathered in the batches' order → one array in row order."""
    out = np.concatenate(parts)
    rows = np.concatenate(index)
    restored = np.empty_like(out)
    restored[rows] = out
    return restored


def predict(model: torch.nn.Module, tasks: dict[str, Task], enc: Encoded, batch_size: int,
            device: torch.device, conditional: bool = False) -> dict[str, np.ndarray]:
    """Predictions per task (probabilities or values) for every row; with `conditional`, also each funnel
    task's p(task | parent) under the key `<task>|<parent>`."""
    parts: dict[str, list[np.ndarray]] = {}
    index: list[np.ndarray] = []
    for batch, out in predict_batches(model, tasks, enc, batch_size, device, conditional):
        index.append(batch["index"])
        for key, value in out.items():
            parts.setdefault(key, []).append(tasks[key.split("|")[0]].predict(value))
    return {t: in_row_order(parts[t], index) if parts.get(t) else np.empty(0) for t in (parts or tasks)}


@torch.no_grad()
def evaluate(model: torch.nn.Module, tasks: dict[str, Task], enc: Encoded, batch_size: int,
             device: torch.device) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """(metrics per task, mean loss per task) over the labelled rows of each task."""
    parts: dict[str, list[np.ndarray]] = {t: [] for t in tasks}
    index: list[np.ndarray] = []
    loss_sum = {t: 0.0 for t in tasks}
    for batch, out in predict_batches(model, tasks, enc, batch_size, device):
        index.append(batch["index"])
        for name, task in tasks.items():
            parts[name].append(task.predict(out[name]))
            if name in batch["masks"]:
                mask = batch["masks"][name]
                loss_sum[name] += float(task.loss(out[name], batch["targets"][name], mask)) * int(mask.sum())
    metrics: dict[str, dict[str, float]] = {}
    losses: dict[str, float] = {}
    for name, task in tasks.items():
        if name not in enc.masks:
            continue
        mask = enc.masks[name]
        n = int(mask.sum())
        if n == 0:
            continue
        everything = in_row_order(parts[name], index)
        pred = everything[mask]
        groups = enc.groups[name][mask] if name in enc.groups else None
        metrics[name] = {**task.metrics(enc.targets[name][mask], pred, groups), "n": n}
        losses[name] = loss_sum[name] / n
        metrics[name]["loss"] = losses[name]
        parent = getattr(task.cfg, "after", None)
        if parent is not None and parent in enc.masks:
            metrics[name]["ctcvr_auc"] = ctcvr_auc(enc, name, parent, everything)
    return metrics, losses


def ctcvr_auc(enc: Encoded, child: str, parent: str, score: np.ndarray) -> float:
    """A funnel's CTCVR AUC (ESMM): how well the entire-space score p(parent)·p(child | parent) ranks the rows
    where both happened (parent = 1 and child = 1) above all others, over rows labelled for both."""
    from ..tasks.binary import safe_auc

    both = enc.masks[child] & enc.masks[parent]
    joint = (enc.targets[child] > 0.5) & (enc.targets[parent] > 0.5)
    return safe_auc(joint[both].astype(np.float64), score[both])
