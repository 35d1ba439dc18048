"""The early-stopping criterion: `valid.loss`, `valid.mean_<metric>`, `valid.<task>.<metric>`, or
`valid.primary` — the mean over tasks of each task's primary metric relative to its value after the first epoch,
sign-corrected as in Δm% (accuracy up and RMSE down both count as gains), which mixes task types fairly where a
sum of losses would reward calibration over accuracy — with direction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError, did_you_mean
from ..tasks import Task
from ..tasks.base import LOWER_IS_BETTER


@dataclass(frozen=True)
class Monitor:
    task: str | None  # None: across tasks
    metric: str  # 'loss', a metric name, 'mean_<metric>' or 'primary'
    higher_is_better: bool
    primaries: tuple[tuple[str, str, bool], ...] = ()  # 'primary': (task, its primary metric, higher is better)

    @classmethod
    def parse(cls, text: str, mode: str, tasks: dict[str, Task]) -> Monitor:
        field = "train.early_stopping.monitor"
        parts = text.split(".")
        if parts[0] != "valid" or len(parts) not in (2, 3):
            raise ConfigError(f"{field}: `{text}` should be valid.loss, valid.primary, valid.mean_<metric> (e.g. valid.mean_auc) "
                              f"or valid.<task>.<metric> (e.g. valid.{next(iter(tasks))}.loss)")
        if len(parts) == 3:
            task, metric = parts[1], parts[2]
            if task not in tasks:
                raise ConfigError(f"{field}: unknown task `{task}`;{did_you_mean(task, tasks)}")
            known = set(tasks[task].metric_names) | {"loss"}
            if metric not in known:
                raise ConfigError(f"{field}: task `{task}` has no metric `{metric}`;{did_you_mean(metric, known)}")
            base = metric
        elif parts[1] == "primary":
            return cls(None, "primary", True, tuple((n, t.primary, t.higher_is_better(t.primary))
                                                    for n, t in tasks.items()))
        else:
            task, metric = None, parts[1]
            names = {f"mean_{m}" for t in tasks.values() for m in t.metric_names} | {"loss", "primary"}
            if metric not in names:
                raise ConfigError(f"{field}: `{metric}` is not known for these tasks;{did_you_mean(metric, names)}")
            base = metric.removeprefix("mean_")
        higher = base not in LOWER_IS_BETTER if mode == "auto" else mode == "max"
        return cls(task, metric, higher)

    def value(self, metrics: dict[str, dict[str, float]], losses: dict[str, float],
              reference: dict[str, dict[str, float]] | None = None) -> float:
        """The monitored figure from one evaluation (metrics and losses per task); `primary` is relative to
        `reference`, the first epoch's metrics (0 at that epoch)."""
        if self.metric == "primary" and self.task is None:
            from ..analysis.compare import relative_gain

            reference = reference or metrics
            gains = [relative_gain(metrics[t][m], reference[t][m], hi) for t, m, hi in self.primaries
                     if t in metrics and t in reference]
            gains = [g for g in gains if not math.isnan(g)]
            return sum(gains) / len(gains) if gains else math.nan
        if self.task is not None:
            return losses[self.task] if self.metric == "loss" else metrics[self.task].get(self.metric, math.nan)
        if self.metric == "loss":
            return float(sum(losses.values()))
        base = self.metric.removeprefix("mean_")
        values = [m[base] for m in metrics.values() if base in m and not math.isnan(m[base])]
        return sum(values) / len(values) if values else math.nan

    def for_task(self, task: Task) -> Monitor:
        """The same criterion for one task alone (independent models keep their own best epoch)."""
        if self.task == task.name:
            return self
        if self.metric == "primary":
            return Monitor(task.name, task.primary, task.higher_is_better(task.primary))
        if self.metric == "loss":
            return Monitor(task.name, "loss", False)
        base = self.metric.removeprefix("mean_")
        metric = base if base in task.metric_names else task.primary
        return Monitor(task.name, metric, task.higher_is_better(metric))

    def better(self, new: float, best: float | None) -> bool:
        if math.isnan(new):
            return False
        if best is None or math.isnan(best):
            return True
        return new > best if self.higher_is_better else new < best
