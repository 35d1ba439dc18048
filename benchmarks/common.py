"""What the benchmark scripts share: one `shopmtl train` per process (its own wall time and peak memory), the
metrics shown per task type, relative gains, and the machine line."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
SHOWN = {"binary": ["auc", "gauc"], "multiclass": ["accuracy", "macro_f1"], "multilabel": ["micro_f1", "macro_f1"],
         "regression": ["rmse", "r2"]}
LOWER = ("rmse", "mae", "logloss")


def train(config: str, label: str, data_dir: str, runs: Path, overrides: list[str]) -> dict:
    """Train `configs/<config>.yaml` with `overrides` in a child process; the run's metrics, time and peak RSS."""
    cmd = [sys.executable, "-m", "shopmtl", "train", str(ROOT / "configs" / f"{config}.yaml"),
           "--data-dir", data_dir, "--output-dir", str(runs), "--set", f"name={config}-{label}",
           "--set", "train.progress=false"]
    for o in overrides:
        cmd += ["--set", o]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    path = Path(output.split("run saved to ")[1].split()[0])
    metrics = json.loads((path / "metrics.json").read_text())
    return {"config": config, "architecture": label, "overrides": overrides, "run": str(path),
            "wall_seconds": round(seconds, 1), "train_seconds": metrics["train_seconds"],
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "epochs_run": metrics["epochs_run"],
            "best_epoch": metrics["best_epoch"], "parameters": metrics["parameters"], "test": metrics["test"], "valid": metrics.get("valid"),
            "rows": metrics["rows"], "expert_flags": metrics.get("expert_use", {}).get("flags"),
            "funnels": metrics.get("funnels")}


def task_types(config: str) -> dict[str, str]:
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / f"{config}.yaml").read_text())
    return {name: spec["type"] for name, spec in raw["tasks"].items()}


def gain(value: float | None, base: float | None, metric: str) -> float:
    """Relative gain in %, sign-corrected so that positive is better for every metric."""
    if value is None or base is None or base == 0:
        return math.nan
    return (-1 if metric in LOWER else 1) * (value - base) / abs(base) * 100


def machine() -> str:
    return (f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.platform()}")


def fmt(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
