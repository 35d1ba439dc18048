"""Evaluation passes: run the model over encoded samples, gather predictions and per-task losses and metrics."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..data.batching import Encoded, batches
from ..tasks import Task


@torch.no_grad()
def predict_batches(model: torch.nn.Module, tasks: dict[str, Task], enc: Encoded, batch_size: int,
                    device: torch.device, conditional: bool = False) -> Iterator[tuple[dict, dict[str, torch.Tensor]]]:
    model.eval()
    for batch in batches(enc, batch_size, device=device):
        yield batch, (model(batch["features"], conditional=True) if conditional else model(batch["features"]))


def predict(model: torch.nn.Module, tasks: dict[str, Task], enc: Encoded, batch_size: int,
            device: torch.device, conditional: bool = False) -> dict[str, np.ndarray]:
    """Predictions per task (probabilities or values) for every row; with `conditional`, also each funnel
    task's p(task | parent) under the key `<task>|<parent>`."""
    parts: dict[str, list[np.ndarray]] = {}
    for _, out in predict_batches(model, tasks, enc, batch_size, device, conditional):
        for key, value in out.items():
            parts.setdefault(key, []).append(tasks[key.split("|")[0]].predict(value))
    return {t: np.concatenate(parts[t]) if parts.get(t) else np.empty(0) for t in (parts or tasks)}


@torch.no_grad()
def evaluate(model: torch.nn.Module, tasks: dict[str, Task], enc: Encoded, batch_size: int,
             device: torch.device) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """(metrics per task, mean loss per task) over the labelled rows of each task."""
    parts: dict[str, list[np.ndarray]] = {t: [] for t in tasks}
    loss_sum = {t: 0.0 for t in tasks}
    for batch, out in predict_batches(model, tasks, enc, batch_size, device):
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
        pred = np.concatenate(parts[name])[mask]
        groups = enc.groups[name][mask] if name in enc.groups else None
        metrics[name] = {**task.metrics(enc.targets[name][mask], pred, groups), "n": n}
        losses[name] = loss_sum[name] / n
        metrics[name]["loss"] = losses[name]
    return metrics, losses
