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
         "regression": ["rmse", "r2"], "tagging": ["span_f1", "span_precision", "span_recall"]}
LOWER = ("rmse", "mae", "logloss", "loss")


def run_name(config: str, label: str) -> str:
    """The run folder name of a benchmark label (names allow letters, digits, _ . -)."""
    return f"{config}-" + "".join(c if c.isalnum() or c in "_.-" else "_" for c in label)


def train(config: str, label: str, data_dir: str, runs: Path, overrides: list[str]) -> dict:
    """Train `configs/<config>.yaml` with `overrides` in a child process; the run's metrics, time and peak RSS."""
    cmd = [sys.executable, "-m", "shopmtl", "train", str(ROOT / "configs" / f"{config}.yaml"),
           "--data-dir", data_dir, "--output-dir", str(runs), "--set", f"name={run_name(config, label)}",
           "--set", "train.progress=false"]
    for o in overrides:
        cmd += ["--set", o]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    path = Path(output.split("run saved to ")[1].split()[0])
    return {**collect(path, config, label, overrides), "wall_seconds": round(seconds, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def collect(path: Path, config: str, label: str, overrides: list[str]) -> dict:
    """A benchmark result from a run folder (wall time is the caller's; peak RSS as the run measured it)."""
    metrics = json.loads((path / "metrics.json").read_text())
    return {"config": config, "architecture": label, "overrides": overrides, "run": str(path),
            "wall_seconds": None, "train_seconds": metrics["train_seconds"], "peak_rss_mb": metrics["peak_rss_mb"],
            "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
            "parameters": metrics["parameters"], "test": metrics["test"], "valid": metrics.get("valid"),
            "rows": metrics["rows"], "expert_flags": metrics.get("expert_use", {}).get("flags"),
            "funnels": metrics.get("funnels")}


def run_all(jobs: list, one, n_jobs: int) -> list[dict]:  # noqa: ANN001
    """Run the jobs `n_jobs` at a time; a failed run is reported and left out, never losing the others."""
    from concurrent.futures import ThreadPoolExecutor

    def guarded(job):  # noqa: ANN001, ANN202
        try:
            return one(job)
        except RuntimeError as e:
            print(f"FAILED {job[:2]}: {e}", flush=True)
            return None

    with ThreadPoolExecutor(n_jobs) as pool:
        return [r for r in pool.map(guarded, jobs) if r is not None]


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


def benchmark_main(name: str, configs: list[str], plan, markdown, extra_args=None) -> None:  # noqa: ANN001
    """The command line every side-by-side benchmark shares: plan the runs, run them (or collect or re-render),
    merge with the saved results of runs not redone, write `results/<name>.{json,md}`.

    `plan(configs, args)` → [(config, label, overrides)]; `markdown(results, command)` → the report."""
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--configs", default=",".join(configs))
    p.add_argument("--only", default=None, help="comma-separated labels to (re)run; the rest are kept")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side (each on one PyTorch thread when > 1)")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--collect", default=None, help="build the results from the run folders in this folder")
    p.add_argument("--render", action="store_true", help="only re-render the markdown from the saved JSON")
    p.add_argument("--name", default=name, help="results file name (e.g. a timing-only pass beside the main one)")
    if extra_args:
        extra_args(p)
    args = p.parse_args()
    saved, report = OUT / f"{args.name}.json", OUT / f"{args.name}.md"
    command = f"python benchmarks/{name}.py " + " ".join(sys.argv[1:])
    if args.render:
        results = json.loads(saved.read_text())
        report.write_text(markdown(results, results[0]["command"]))
        return
    jobs = [j for j in plan(args.configs.split(","), args) if not args.only or j[1] in args.only.split(",")]
    runs = ROOT / "benchmarks" / "out" / time.strftime("%Y%m%d-%H%M%S")
    threads = ["train.threads=1"] if args.jobs > 1 else []

    def one(job: tuple[str, str, list[str]]) -> dict:
        config, label, overrides = job
        r = train(config, label, args.data_dir, runs, overrides + threads)
        print(f"{config} / {label}: {r['train_seconds']} s, peak {r['peak_rss_mb']} MB", flush=True)
        return {**r, "command": command}

    if args.collect:  # results from the run folders of an earlier invocation (wall time not recorded)
        results = [{**collect(Path(args.collect) / run_name(c, label), c, label, o), "command": command}
                   for c, label, o in jobs if (Path(args.collect) / run_name(c, label)).is_dir()]
    else:
        results = run_all(jobs, one, args.jobs)
    OUT.mkdir(parents=True, exist_ok=True)
    if saved.exists():  # keep results this invocation did not redo
        done = {(r["config"], r["architecture"]) for r in results}
        results = [r for r in json.loads(saved.read_text()) if (r["config"], r["architecture"]) not in done] + results
    saved.write_text(json.dumps(results, indent=2))
    report.write_text(markdown(results, command))
    print(markdown(results, command))
