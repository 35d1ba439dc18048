"""The early-stopping criterion: `valid.loss`, `valid.mean_<metric>` or `valid.<task>.<metric>`, with direction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError, did_you_mean
from ..tasks import Task
from ..tasks.base import LOWER_IS_BETTER


@dataclass(frozen=True)
class Monitor:
    task: str | None  # None: across tasks
    metric: str  # 'loss', a metric name, or 'mean_<metric>'
    higher_is_better: bool

    @classmethod
    def parse(cls, text: str, mode: str, tasks: dict[str, Task]) -> Monitor:
        field = "train.early_stopping.monitor"
        parts = text.split(".")
        if parts[0] != "valid" or len(parts) not in (2, 3):
            raise ConfigError(f"{field}: `{text}` should be valid.loss, valid.mean_<metric> (e.g. valid.mean_auc) "
                              f"or valid.<task>.<metric> (e.g. valid.{next(iter(tasks))}.loss)")
        if len(parts) == 3:
            task, metric = parts[1], parts[2]
            if task not in tasks:
                raise ConfigError(f"{field}: unknown task `{task}`;{did_you_mean(task, tasks)}")
            known = set(tasks[task].metric_names) | {"loss"}
            if metric not in known:
                raise ConfigError(f"{field}: task `{task}` has no metric `{metric}`;{did_you_mean(metric, known)}")
            base = metric
        else:
            task, metric = None, parts[1]
            names = {f"mean_{m}" for t in tasks.values() for m in t.metric_names} | {"loss"}
            if metric not in names:
                raise ConfigError(f"{field}: `{metric}` is not known for these tasks;{did_you_mean(metric, names)}")
            base = metric.removeprefix("mean_")
        higher = base not in LOWER_IS_BETTER if mode == "auto" else mode == "max"
        return cls(task, metric, higher)

    def value(self, metrics: dict[str, dict[str, float]], losses: dict[str, float]) -> float:
        """The monitored figure from one evaluation (metrics and losses per task)."""
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
