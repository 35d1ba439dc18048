"""The main job: the review tasks trained together (shared_bottom), alone (single), and the per-task baselines a
practitioner would fit instead (TF-IDF + logistic regression / ridge, LightGBM), on the same split; one table
on the test split says who wins each task."""

from __future__ import annotations

import math
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .analysis.compare import relative_gain
from .config import apply_overrides, config_from_dict
from .data.fetch import locate_reviews
from .experiment import Experiment


def demo_config(path: Path, output_dir: str, epochs: int | None, limit: int | None):
    raw = yaml.safe_load(resources.files("shopmtl").joinpath("configs/demo_reviews.yaml").read_text("utf-8"))
    overrides = [f"data.source.path={path}", f"output_dir={output_dir}"]
    if epochs:
        overrides.append(f"train.epochs={epochs}")
    if limit:
        overrides.append(f"data.source.limit={limit}")
    return config_from_dict(apply_overrides(raw, overrides), "the demo config")


def _value(run: Any, task: str, metric: str) -> float:
    value = run.metrics.get("test", {}).get(task, {}).get(metric)
    return math.nan if value is None else float(value)


def demo_rows(runs: dict[str, Any], baselines: dict[str, Any]) -> list[dict[str, Any]]:
    """Per task: the primary test metric of the baseline chosen on validation, of single-task and multi-task,
    and which of the three is best."""
    rows = []
    for name, task in runs["single"].tasks.items():
        metric = task.primary
        best = baselines["best"].get(name)
        entry = baselines["tasks"][name].get(best, {}) if best else {}
        row = {"task": name, "metric": metric, "baseline_label": entry.get("label", "—"),
               "baseline": float(entry.get("test", {}).get(metric, math.nan)) if entry else math.nan,
               "single": _value(runs["single"], name, metric),
               "shared_bottom": _value(runs["shared_bottom"], name, metric)}
        higher = task.higher_is_better(metric)
        row["vs_baseline"] = relative_gain(row["shared_bottom"], row["baseline"], higher)
        row["vs_single"] = relative_gain(row["shared_bottom"], row["single"], higher)
        scored = [(v if higher else -v, k) for k, v in (("baseline", row["baseline"]), ("single", row["single"]),
                                                        ("multi-task", row["shared_bottom"])) if not math.isnan(v)]
        row["winner"] = max(scored)[1] if scored else "—"
        rows.append(row)
    return rows


def format_demo(rows: list[dict[str, Any]]) -> str:
    head = (f"{'task':<13}{'metric':<10}{'baseline (chosen on valid)':>34}{'single':>9}{'multi-task':>12}"
            f"{'vs baseline':>13}{'vs single':>11}  best")
    lines = [head, "-" * len(head)]
    for r in rows:
        base = f"{r['baseline_label']} {r['baseline']:.4f}"
        lines.append(f"{r['task']:<13}{r['metric']:<10}{base:>34}{r['single']:>9.4f}{r['shared_bottom']:>12.4f}"
                     f"{r['vs_baseline']:>+12.2f}%{r['vs_single']:>+10.2f}%  {r['winner']}")
    lines.append("-" * len(head))
    gains = [r["vs_single"] for r in rows if not math.isnan(r["vs_single"])]
    base_gains = [r["vs_baseline"] for r in rows if not math.isnan(r["vs_baseline"])]
    lines.append(f"Δm% of the multi-task model: {sum(gains) / max(len(gains), 1):+.2f}% against single-task, "
                 f"{sum(base_gains) / max(len(base_gains), 1):+.2f}% against the baselines")
    return "\n".join(lines)


def run_demo(data_dir: str | None = None, output_dir: str = "runs", epochs: int | None = None,
             limit: int | None = None) -> list[dict]:
    from .analysis.baselines import run_baselines

    path = locate_reviews(data_dir)
    print(f"data: Women's Clothing E-Commerce Reviews from {path}")
    base = demo_config(path, output_dir, epochs, limit)
    data = Experiment(base).read_data()
    runs, seconds = {}, {}
    for arch in ("single", "shared_bottom"):
        cfg = base.model_copy(deep=True)
        cfg.model.architecture = arch
        cfg.name = f"{base.name}-{arch}"
        print(f"\n== training `{arch}` on {len(data)} reviews, tasks: {', '.join(cfg.tasks)}")
        start = time.perf_counter()
        runs[arch] = Experiment(cfg).fit(data=data)
        seconds[arch] = time.perf_counter() - start
        print(f"   saved to {runs[arch].path} ({seconds[arch]:.0f} s)")
    print("\n== fitting the per-task baselines (TF-IDF + logistic regression / ridge, LightGBM) on the same split")
    start = time.perf_counter()
    frames, tasks = Experiment(base).prepare(data)
    baselines = run_baselines(base, frames, tasks, ["linear", "lightgbm"])
    seconds["baselines"] = time.perf_counter() - start
    rows = demo_rows(runs, baselines)
    print("\nTest split: the baseline a practitioner would pick per task, each task alone (single), and all four "
          "in one model (multi-task, shared_bottom):")
    print(format_demo(rows))
    ratio = seconds["shared_bottom"] / seconds["single"] if seconds["single"] else math.nan
    n_single = runs["single"].metrics["parameters"]
    n_multi = runs["shared_bottom"].metrics["parameters"]
    print(f"\ntraining time: single {seconds['single']:.0f} s, shared_bottom {seconds['shared_bottom']:.0f} s "
          f"({ratio:.2f}×), baselines {seconds['baselines']:.0f} s; parameters: single {n_single:,}, "
          f"shared_bottom {n_multi:,}")
    return rows
