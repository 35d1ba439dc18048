"""Benchmark for the balancing issue: every balancer × (shared_bottom, mmoe) on the Taobao shopping guide and the
reviews config, against single-task models: per-task test metrics, Δm%, seconds per epoch.

The best method per dataset is named twice: by validation Δm% (how one should choose) and by test Δm%. Each run is
its own `shopmtl train` process; with --jobs 2 two run side by side, each on one PyTorch thread. Writes
benchmarks/results/balancing.{json,md}.

    python benchmarks/balancing.py [--configs shopping_guide,reviews] [--jobs 2] [--set key=value ...]
"""

from __future__ import annotations

import json
import math

from common import OUT, benchmark_main, fmt, gain, machine, task_types

METHODS = ["equal", "uncertainty", "dwa", "rlw", "gradnorm", "pcgrad", "cagrad", "mgda", "nash_mtl", "famo"]
ARCHITECTURES = ["shared_bottom", "mmoe"]
CONFIGS = ["shopping_guide", "reviews"]
PRIMARY = {"binary": "auc", "multiclass": "accuracy", "multilabel": "micro_f1", "regression": "rmse"}


def plan(configs: list[str], extra: list[str]) -> list[tuple[str, str, list[str]]]:
    jobs = []
    for config in configs:
        jobs.append((config, "single", ["model.architecture=single", *extra]))
        for arch in ARCHITECTURES:
            jobs += [(config, f"{arch}/{m}", [f"model.architecture={arch}", f"balance.method={m}", *extra])
                     for m in METHODS]
    return jobs


def delta_m(run: dict, base: dict, kinds: dict[str, str], split: str) -> float:
    gains = [gain(run[split][t][PRIMARY[k]], base[split][t][PRIMARY[k]], PRIMARY[k]) for t, k in kinds.items()]
    return sum(gains) / len(gains)


def clean_timing() -> dict[tuple[str, str], float]:
    """s / epoch from a timing-only pass (`--name balancing_timing --set train.epochs=1`), where it was run: the
    main pass's timings are only as clean as the machine was while it ran."""
    path = OUT / "balancing_timing.json"
    if not path.exists():
        return {}
    return {(r["config"], r["architecture"]): r["train_seconds"] / max(r["epochs_run"], 1)
            for r in json.loads(path.read_text())}


def markdown(results: list[dict], command: str) -> str:
    lines = [machine(), "", f"Command: `{command}`", ""]
    timing = clean_timing()
    for config in [c for c in CONFIGS if any(r["config"] == c for r in results)]:
        runs = {r["architecture"]: r for r in results if r["config"] == config}
        kinds = task_types(config)
        base = runs["single"]
        rows = base["rows"]
        timed = any(c == config for c, _ in timing)
        lines += [f"### {config} (rows train/valid/test: {rows['train']}/{rows['valid']}/{rows['test']})", "",
                  "| architecture / method | " + " | ".join(f"{t} {PRIMARY[k]}" for t, k in kinds.items()) +
                  " | Δm% test | Δm% valid | s / epoch | epochs |" + (" s / epoch, timing pass |" if timed else ""),
                  "| --- |" + " ---: |" * (len(kinds) + 4 + timed)]
        scored = []
        for label in ["single"] + [f"{a}/{m}" for a in ARCHITECTURES for m in METHODS]:
            if label not in runs:
                continue
            r = runs[label]
            test_dm, valid_dm = delta_m(r, base, kinds, "test"), delta_m(r, base, kinds, "valid")
            if label != "single":
                scored.append((label, test_dm, valid_dm))
            per_epoch = r["train_seconds"] / max(r["epochs_run"], 1)
            cells = [fmt(r["test"][t][PRIMARY[k]]) for t, k in kinds.items()]
            clean = f" {timing[(config, label)]:.1f} |" if (config, label) in timing else (" — |" if timed else "")
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {test_dm:+.2f}% | {valid_dm:+.2f}% | "
                         f"{per_epoch:.1f} | {r['epochs_run']} |" + clean)
        if scored:
            by_valid = max(scored, key=lambda s: s[2] if not math.isnan(s[2]) else -math.inf)
            by_test = max(scored, key=lambda s: s[1] if not math.isnan(s[1]) else -math.inf)
            lines += ["", f"Best by validation Δm%: **{by_valid[0]}** (valid {by_valid[2]:+.2f}%, test "
                          f"{by_valid[1]:+.2f}%). Best on test: {by_test[0]} ({by_test[1]:+.2f}%).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    benchmark_main("balancing", CONFIGS, lambda configs, args: plan(configs, args.set), markdown,
                   lambda p: p.add_argument("--set", action="append", default=[],
                                            help="an override for every run (e.g. train.epochs=4)"))
