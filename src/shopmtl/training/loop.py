"""The training loop, top to bottom.

For each epoch: shuffle the training rows; for each mini-batch, run the model, compute every task's masked loss,
let the balancer turn those losses into one backward pass, clip and step AdamW. Then evaluate on the validation
split, log the epoch, and keep the weights of the best epoch by the monitored figure (per task, when the tasks
share nothing). Stop after `patience` epochs without improvement, and restore the best weights. Without early
stopping (`train.early_stopping: null`) every epoch runs and the last one's weights are kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..analysis.experts import gate_columns, recording
from ..balancing import Balancer
from ..config import ModelConfig, TrainConfig
from ..data.batching import Encoded, batches, n_batches, text_lengths
from ..model import MultiTaskModel
from ..tasks import Task
from .affinity import AffinityMonitor
from .conflict import ConflictMonitor
from .evaluate import evaluate
from .monitor import Monitor
from .optim import Optimizer


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: dict[str, int] = field(default_factory=dict)  # task (or '*' for all) → best epoch
    seconds: float = 0.0
    affinity: dict[str, dict[str, float | None]] | None = None  # Z[i → j] over the run (training/affinity.py)
    gradient_cosine: dict[str, dict[str, float | None]] | None = None
    start: dict[str, dict[str, float]] | None = None  # validation metrics before training (`start_is_candidate`)
    kept_start: list[str] = field(default_factory=list)  # tasks that kept their starting weights (`_Start`)


class _Best:
    """The best epoch so far for one criterion, and the state-dict entries it guards."""

    def __init__(self, monitor: Monitor, keys: list[str] | None):
        self.monitor, self.keys = monitor, keys
        self.value: float | None = None
        self.epoch = 0
        self.state: dict[str, torch.Tensor] = {}
        self.stale = 0
        self.kept_start: list[str] = []  # tasks that keep the starting weights at the best epoch (`_Start`)

    def update(self, value: float, epoch: int, model: torch.nn.Module, kept_start: list[str] | None = None) -> None:
        if self.monitor.better(value, self.value):
            self.value, self.epoch, self.stale = value, epoch, 0
            self.kept_start = list(kept_start or [])
            state = model.state_dict()
            keys = self.keys if self.keys is not None else list(state)
            self.state = {k: state[k].detach().clone() for k in keys}
        else:
            self.stale += 1


class _Start:
    """The starting model as a candidate, per task (`start_is_candidate`). A task whose output is its own head
    and wide term (not a funnel's parent or child) may keep its starting weights while the others train on: at
    every epoch it counts at whichever of the two is better on its primary validation metric, and the weights
    restored at the end follow the best epoch's choice. Started from the fitted wide model (and the taggers'
    fitted feature CRFs) with zeroed deep outputs, this keeps those fits for the tasks the deep path does not
    help."""

    def __init__(self, model: MultiTaskModel, tasks: dict[str, Task], metrics: dict[str, dict[str, float]],
                 losses: dict[str, float]):
        tied = set(model.parents) | set(model.parents.values())
        started = model.fitted_first or list(model.wide)
        self.tasks = {name: tasks[name] for name in started if name in tasks and name not in tied}
        self.judges = {name: Monitor(name, t.primary, t.higher_is_better(t.primary)) for name, t in self.tasks.items()}
        state = model.state_dict()
        self.state = {name: {k: state[k].detach().clone() for k in state
                             if k.startswith((f"heads.{name}.", f"wide.{name}."))} for name in self.tasks}
        self.metrics, self.losses = metrics, losses

    def mix(self, metrics: dict[str, dict[str, float]], losses: dict[str, float]
            ) -> tuple[dict[str, dict[str, float]], dict[str, float], list[str]]:
        """This epoch's figures with the starting ones for the tasks where those are better, and those tasks."""
        metrics, losses, kept = dict(metrics), dict(losses), []
        for name, task in self.tasks.items():
            now, then = metrics[name].get(task.primary, math.nan), self.metrics[name].get(task.primary, math.nan)
            if not math.isnan(then) and not self.judges[name].better(now, then):
                metrics[name], losses[name] = self.metrics[name], self.losses[name]
                kept.append(name)
        return metrics, losses, kept

    def restore(self, state: dict[str, torch.Tensor], kept: list[str]) -> None:
        for name in kept:
            state.update(self.state[name])


def _trackers(model: MultiTaskModel, tasks: dict[str, Task], monitor: Monitor) -> dict[str, _Best]:
    if not model.independent:
        return {"*": _Best(monitor, None)}
    return {name: _Best(monitor.for_task(task), model.task_keys(name)) for name, task in tasks.items()}


def fit(model: MultiTaskModel, tasks: dict[str, Task], balancer: Balancer, train: Encoded, valid: Encoded,
        cfg: TrainConfig, rng: np.random.Generator, device: torch.device, amp: bool = False,
        model_cfg: ModelConfig | None = None,
        on_epoch: Callable[[int, dict[str, dict[str, float]]], None] | None = None,
        start_is_candidate: bool = False) -> FitResult:
    """Train `model`; `on_epoch(epoch, validation metrics)` is called after each epoch's evaluation (a tuner
    reports and prunes there). With `start_is_candidate` the untrained model (e.g. one that starts as the fitted
    wide model) is evaluated first and is the best checkpoint until an epoch beats it (best epoch 0)."""
    es = cfg.early_stopping
    monitor = Monitor.parse(es.monitor if es else "valid.loss", es.mode if es else "auto", tasks)
    steps = n_batches(len(train), cfg.batch_size, cfg.max_batches_per_epoch)
    optimizer = Optimizer(model, balancer.parameters(), cfg, model_cfg or ModelConfig(), steps * cfg.epochs)
    scaler = torch.amp.GradScaler("cuda") if amp else None
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if amp else nullcontext
    trackers = _trackers(model, tasks, monitor)
    conflicts = ConflictMonitor(list(tasks), model.shared_parameters(), cfg.conflict_every)
    affinity = AffinityMonitor(list(tasks), model.shared_parameters(), cfg.affinity_every, optimizer)
    lengths = text_lengths(train) if cfg.bucket_by_length else None
    global_step = 0
    reference: dict[str, dict[str, float]] | None = None
    result = FitResult()
    start = time.perf_counter()
    start_point: _Start | None = None
    if start_is_candidate:
        metrics, valid_losses = evaluate(model, tasks, valid, max(cfg.batch_size, 1024), device)
        reference = result.start = metrics
        if "*" in trackers:  # independent tasks keep their own best epoch, epoch 0 included, anyway
            start_point = _Start(model, tasks, metrics, valid_losses)
        at_start = list(start_point.tasks) if start_point is not None else []  # best at epoch 0: all keep it
        for tracker in trackers.values():
            tracker.update(tracker.monitor.value(metrics, valid_losses, reference), 0, model, at_start)

    for epoch in range(1, cfg.epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        sums = {t: 0.0 for t in tasks}
        weight_sums = {t: 0.0 for t in tasks}
        reg_sums: dict[str, float] = {}
        bar = tqdm(batches(train, cfg.batch_size, shuffle=True, generator=rng, device=device,
                           limit=cfg.max_batches_per_epoch, lengths=lengths),
                   total=steps, desc=f"epoch {epoch}/{cfg.epochs}", disable=not cfg.progress, leave=False,
                   dynamic_ncols=True)
        for step, batch in enumerate(bar, 1):
            global_step += 1
            with autocast():
                out = model(batch["features"])
                losses = {t: task.loss(out[t], batch["targets"][t], batch["masks"][t]) for t, task in tasks.items()}
                regs = model.regularisers(batch["masks"])
            measure_conflict, measure_affinity = conflicts.due(global_step, step), affinity.due(global_step, step)
            grads = conflicts.gradients(losses) if measure_conflict or measure_affinity else None
            if measure_conflict:
                conflicts.record(grads)
            extra = sum(regs.values()) if regs else None
            optimizer.zero_grad()
            weights = balancer.backward({t: (scaler.scale(v) if scaler else v) for t, v in losses.items()},
                                        scaler.scale(extra) if scaler and extra is not None else extra)
            if measure_affinity:  # after the backward pass: the look-ahead moves parameters (and puts them back)
                affinity.measure(grads, lambda b=batch: _recompute(model, tasks, b, eval_mode=True))
            if scaler:
                optimizer.unscale(scaler)
            if cfg.grad_clip:
                optimizer.clip(cfg.grad_clip)
            optimizer.step(scaler)
            if scaler:
                scaler.update()
            balancer.after_step(lambda b=batch: _recompute(model, tasks, b))
            for t in tasks:
                sums[t] += float(losses[t].detach())
                weight_sums[t] += weights[t]
            for r, v in regs.items():
                reg_sums[r] = reg_sums.get(r, 0.0) + float(v.detach())
            bar.set_postfix({t: f"{sums[t] / step:.3f}" for t in tasks})
        bar.close()
        balancer.on_epoch_end({t: sums[t] / max(steps, 1) for t in tasks})

        with recording(model) as routing:
            metrics, valid_losses = evaluate(model, tasks, valid, max(cfg.batch_size, 1024), device)
        row: dict[str, float] = {"epoch": epoch, "seconds": time.perf_counter() - epoch_start}
        row.update({f"train.{t}.loss": sums[t] / max(steps, 1) for t in tasks})
        row.update({f"train.reg.{r}": v / max(steps, 1) for r, v in reg_sums.items()})
        row.update(gate_columns(routing))
        row.update(conflicts.columns())
        row.update(affinity.columns())
        row.update({f"weight.{t}": weight_sums[t] / max(steps, 1) for t in tasks})
        row["valid.loss"] = float(sum(valid_losses.values()))
        row.update({f"valid.{t}.{k}": v for t, m in metrics.items() for k, v in m.items() if k != "n"})
        reference = reference or metrics  # `valid.primary` is relative to the first epoch
        kept: list[str] = []
        if start_point is not None:
            metrics_at, losses_at, kept = start_point.mix(metrics, valid_losses)
        else:
            metrics_at, losses_at = metrics, valid_losses
        for tracker in trackers.values():
            tracker.update(tracker.monitor.value(metrics_at, losses_at, reference), epoch, model, kept)
        row["monitor"] = monitor.value(metrics_at, losses_at, reference)
        if kept:
            row["kept_start"] = len(kept)
        result.history.append(row)
        if cfg.progress:
            tqdm.write(_epoch_line(row, tasks, monitor))
        if on_epoch is not None:
            on_epoch(epoch, metrics_at)  # with a start candidate: what the model would be if it stopped here
        if es and all(t.stale >= es.patience for t in trackers.values()):
            break

    if es is None:  # no early stopping: every epoch trains and the last one's weights are the model's
        result.best_epoch = {name: len(result.history) for name in trackers}
    else:
        state = model.state_dict()
        for tracker in trackers.values():
            state.update(tracker.state)
            if start_point is not None:
                start_point.restore(state, tracker.kept_start)
        model.load_state_dict(state)
        result.best_epoch = {name: t.epoch for name, t in trackers.items()}
        if "*" in trackers:
            result.kept_start = trackers["*"].kept_start
        elif start_is_candidate:  # each task its own best epoch: those still at epoch 0 kept their fitted start
            started = set(model.fitted_first)
            result.kept_start = [name for name, t in trackers.items() if t.epoch == 0 and name in started]
    result.seconds = time.perf_counter() - start
    result.affinity, result.gradient_cosine = affinity.matrix(), conflicts.matrix()
    return result


@torch.no_grad()
def _recompute(model: MultiTaskModel, tasks: dict[str, Task], batch: dict,
               eval_mode: bool = False) -> dict[str, torch.Tensor]:
    """This batch's task losses after the step (balancers that measure a step's effect, e.g. FAMO; the affinity
    look-ahead, in evaluation mode)."""
    was_training = model.training
    if eval_mode:
        model.eval()
    try:
        out = model(batch["features"])
        return {t: task.loss(out[t], batch["targets"][t], batch["masks"][t]) for t, task in tasks.items()}
    finally:
        model.train(was_training)


def _epoch_line(row: dict[str, float], tasks: dict[str, Task], monitor: Monitor) -> str:
    parts = [f"epoch {int(row['epoch'])}"]
    for t, task in tasks.items():
        value = row.get(f"valid.{t}.{task.primary}", math.nan)
        parts.append(f"{t} {task.primary} {value:.4f}")
    label = f"{monitor.task + '.' if monitor.task else ''}{monitor.metric}"
    parts.append(f"monitor valid.{label} {row['monitor']:.4f} ({row['seconds']:.1f}s)")
    return " | ".join(parts)
