"""Single- vs multi-task comparison: per task, each run's primary metric and its change against single-task."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..run import Run


def relative_gain(value: float, baseline: float, higher_is_better: bool) -> float:
    """Signed relative change in percent: positive means better, whatever the metric's direction."""
    if any(map(math.isnan, (value, baseline))) or baseline == 0:
        return math.nan
    sign = 1.0 if higher_is_better else -1.0
    return sign * (value - baseline) / abs(baseline) * 100.0


def comparison_rows(single: Run, others: dict[str, Run], split: str = "test") -> list[dict[str, Any]]:
    """One row per task: its primary metric for the single-task run and for each other run, with gains in %."""
    rows = []
    for name, task in single.tasks.items():
        metric = task.primary
        base = single.metrics.get(split, {}).get(name, {}).get(metric, math.nan)
        base = math.nan if base is None else base
        row: dict[str, Any] = {"task": name, "metric": metric, "single": base}
        for label, run in others.items():
            value = run.metrics.get(split, {}).get(name, {}).get(metric, math.nan)
            value = math.nan if value is None else value
            row[label] = value
            row[f"{label}_gain_pct"] = relative_gain(value, base, task.higher_is_better(metric))
        rows.append(row)
    return rows


def mean_gain(rows: list[dict[str, Any]], label: str) -> float:
    """Δm%: the mean over tasks of the direction-corrected relative gain against single-task."""
    gains = [r[f"{label}_gain_pct"] for r in rows if not math.isnan(r[f"{label}_gain_pct"])]
    return sum(gains) / len(gains) if gains else math.nan


def format_comparison(rows: list[dict[str, Any]], labels: list[str]) -> str:
    head = f"{'task':<16}{'metric':<12}{'single':>10}" + "".join(f"{lab:>16}{'gain':>9}" for lab in labels)
    lines = [head, "-" * len(head)]
    for r in rows:
        line = f"{r['task']:<16}{r['metric']:<12}{r['single']:>10.4f}"
        for lab in labels:
            gain = r[f"{lab}_gain_pct"]
            mark = "" if math.isnan(gain) or gain == 0 else (" ▲" if gain > 0 else " ▼")
            line += f"{r[lab]:>16.4f}{gain:>+7.1f}%{mark}"
        lines.append(line)
    lines.append("-" * len(head))
    lines.append(f"{'Δm% (mean relative gain over tasks)':<38}" + "".join(
        f"{mean_gain(rows, lab):>+24.2f}%" for lab in labels))
    return "\n".join(lines)
