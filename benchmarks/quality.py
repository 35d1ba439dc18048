"""Benchmark for the quality issue: for every recipe, the practitioner's per-task baselines (TF-IDF + LR / ridge,
LightGBM, feature CRF; settings chosen on validation) against the single-task models and the multi-task model of
the recipe, on the test split, mean ± std over seeds. One `shopmtl compare CONFIG --baselines --seeds N` per
recipe, each in its own process (`--jobs 2`: two side by side, one PyTorch thread each).

    python benchmarks/quality.py [--configs catalog,toys,...] [--seeds 3] [--jobs 2] [--data-dir ../shared/data]
    python benchmarks/quality.py --render          # rewrite results/quality.md from the saved JSON

Per task the table shows the primary metric and, for binary tasks, GAUC (ranking within a user) and, for funnel
tasks, CTCVR AUC; "vs best baseline" is against the strongest baseline on the test split (a stricter bar than the
baseline chosen on validation)."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import LOWER, OUT, ROOT, gain, machine, run_all

RECIPES = ["shopping_guide", "shopping_funnel", "user_profile", "reviews", "catalog", "toys", "books",
           "chinese_reviews", "taobao_titles"]
SECONDARY = {"binary": ["gauc", "ctcvr_auc"]}


def compare(config: str, seeds: int, data_dir: str, out: Path, threads: int | None, wide_cache: Path) -> Path:
    folder = out / f"{config}-compare"
    if (folder / "compare.json").is_file():
        return folder
    cmd = [sys.executable, "-m", "shopmtl", "compare", str(ROOT / "configs" / f"{config}.yaml"), "--seeds",
           str(seeds), "--baselines", "--data-dir", data_dir, "--output-dir", str(out), "--set",
           "train.progress=false", "--wide-cache", str(wide_cache)]
    if threads:
        cmd += ["--set", f"train.threads={threads}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    made = Path(proc.stdout.split("comparison saved to ")[1].split()[0])
    if made != folder:
        made.rename(folder)
    (folder / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    print(f"{config}: {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def _cell(values: list[float]) -> dict:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return {"mean": statistics.fmean(clean) if clean else math.nan,
            "std": statistics.stdev(clean) if len(clean) > 1 else 0.0, "values": values}


def collect(config: str, folder: Path) -> dict:
    record = json.loads((folder / "compare.json").read_text())
    variant = record["variants"][0]["label"]
    baselines = record["baselines"]
    tasks = {}
    for name, families in baselines["tasks"].items():
        primary = baselines["primary"][name]
        kinds = [primary] + [m for m in SECONDARY["binary"]
                             if any(m in (e.get("test") or {}) for e in families.values())]
        rows = {}
        for metric in kinds:
            row = {"baselines": {e["label"]: (e.get("test") or {}).get(metric) for e in families.values()}}
            for label in ("single", variant):
                values = []
                for path in record["runs"][label]:
                    metrics = json.loads((folder / path / "metrics.json").read_text())
                    values.append((metrics.get("test", {}).get(name) or {}).get(metric))
                row[label] = _cell([math.nan if v is None else v for v in values])
            rows[metric] = row
        tasks[name] = rows
    seconds = {}
    for label in ("single", variant):
        secs = [json.loads((folder / p / "metrics.json").read_text())["train_seconds"] for p in record["runs"][label]]
        seconds[label] = statistics.fmean(secs)
    seconds["baselines"] = sum(e["fit_seconds"] for fams in baselines["tasks"].values() for e in fams.values())
    wall = folder / "wall_seconds.txt"
    return {"config": config, "variant": variant, "seeds": record["seeds"], "rows": baselines["rows"],
            "tasks": tasks, "train_seconds": seconds,
            "wall_seconds": float(wall.read_text()) if wall.exists() else None,
            "folder": str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder)}


def _pm(cell: dict) -> str:
    return "—" if math.isnan(cell["mean"]) else f"{cell['mean']:.4f} ± {cell['std']:.4f}"


def markdown(results: dict, command: str) -> str:
    lines = [machine(), "", f"Command: `{command}`", ""]
    for config, r in results.items():
        variant = r["variant"]
        rows = r["rows"]
        lines += [f"#### {config} (rows train/valid/test: {rows['train']}/{rows['valid']}/{rows['test']}; "
                  f"multi = `{variant}`, seeds {', '.join(map(str, r['seeds']))})", "",
                  "| task | metric | best baseline (test) | single | multi | multi vs best baseline | "
                  "multi vs single |", "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
        wins = total = 0
        for task, metrics in r["tasks"].items():
            for i, (metric, row) in enumerate(metrics.items()):
                scored = [(v, k) for k, v in row["baselines"].items() if v is not None and not math.isnan(v)]
                if not scored:
                    continue
                best_value, best = (min if metric in LOWER else max)(scored)
                multi, single = row[variant], row["single"]
                vs_base = gain(multi["mean"], best_value, metric)
                if i == 0:
                    total += 1
                    wins += vs_base >= 0
                mark = "" if math.isnan(vs_base) else (" ✔" if vs_base >= 0 else " ✘")
                lines.append(f"| {task if i == 0 else ''} | {metric} | {best_value:.4f} {best} | {_pm(single)} | "
                             f"{_pm(multi)} | {vs_base:+.2f}%{mark} | {gain(multi['mean'], single['mean'], metric):+.2f}% |")
        s = r["train_seconds"]
        lines += ["", f"Primary metric at or above the strongest baseline: **{wins} of {total} tasks**. Training "
                      f"seconds per seed: single {s['single']:.0f}, multi {s[variant]:.0f}; baselines "
                      f"{s['baselines']:.0f} (all tasks, incl. the validation choice).", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--configs", default=",".join(RECIPES))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "quality"))
    p.add_argument("--threads", type=int, default=None, help="PyTorch threads per comparison (default: 1 with "
                   "--jobs > 1, else PyTorch's own)")
    p.add_argument("--wide-cache", help="folder of the deterministic wide fits, shared by the comparisons "
                   "(default: OUT/wide_fits)")
    p.add_argument("--render", action="store_true")
    args = p.parse_args()
    saved, report = OUT / "quality.json", OUT / "quality.md"
    command = "python benchmarks/quality.py " + " ".join(sys.argv[1:])
    results = json.loads(saved.read_text())["results"] if saved.exists() else {}
    if not args.render:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        threads = args.threads or (1 if args.jobs > 1 else None)
        configs = args.configs.split(",")
        folders = run_all([(c, c) for c in configs],
                          lambda job: (job[0], compare(job[0], args.seeds, args.data_dir, out, threads,
                                                       Path(args.wide_cache or out / "wide_fits"))), args.jobs)
        # read again: another quality.py may have written its recipes while these ran
        results = json.loads(saved.read_text())["results"] if saved.exists() else {}
        for config, folder in folders:
            results[config] = collect(config, folder)
        results = {c: results[c] for c in RECIPES if c in results}
        OUT.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"command": command, "results": results}, indent=2, default=float))
    report.write_text(markdown(results, json.loads(saved.read_text())["command"] if args.render else command))
    print(report.read_text())


if __name__ == "__main__":
    main()
