"""Benchmark for the architectures issue: every sharing architecture against `single` on the shopping guide
(Taobao CIKM-2019: click, fav, cart, buy with AUC and GAUC by user) and on the reviews config, plus funnel variants.

Each run is its own `shopmtl train` process; with --jobs 2 two run side by side, each on one PyTorch thread, so
their times compare within this run. Settings come from the configs (chosen on validation splits); the figures
are the test split's. Writes benchmarks/results/architectures.{json,md}.

    python benchmarks/architectures.py [--configs shopping_guide,reviews] [--jobs 2] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from common import OUT, ROOT, SHOWN, collect, fmt, gain, machine, run_all, run_name, task_types, train

ARCHITECTURES = ["single", "shared_bottom", "soft", "adversarial", "cross_stitch", "mmoe", "omoe", "ple",
                 "hierarchical"]
# funnel variants: cart after click holds in the training days (4.6% of carts lack a click that day);
# buy after click (27%) and buy after cart (44%) do not, and the data check refuses them
VARIANTS = {"shopping_guide": {"shared_bottom+funnel": ["model.architecture=shared_bottom", "tasks.cart.after=click"],
                               "mmoe+funnel": ["model.architecture=mmoe", "tasks.cart.after=click"]}}
# task depths of `hierarchical`, chosen on the validation split with benchmarks/sweep_valid.py (RESULTS.md)
DEPTHS = {"shopping_guide": ["tasks.fav.depth=1"],
          "reviews": ["tasks.department.depth=0", "tasks.recommend.depth=0"]}
CONFIGS = ["reviews", "shopping_guide"]
SHOWN_CONFIGS = ["shopping_guide", "reviews"]


def plan(configs: list[str]) -> list[tuple[str, str, list[str]]]:
    jobs = []
    for config in configs:
        jobs += [(config, a, [f"model.architecture={a}"] + (DEPTHS.get(config, []) if a == "hierarchical" else []))
                 for a in ARCHITECTURES]
        jobs += [(config, label, o) for label, o in VARIANTS.get(config, {}).items()]
    return jobs


def markdown(results: list[dict], command: str) -> str:
    lines = [machine(), "", f"Command: `{command}`", ""]
    for config in [c for c in SHOWN_CONFIGS if any(r["config"] == c for r in results)]:
        runs = {r["architecture"]: r for r in results if r["config"] == config}
        labels = [a for a in ARCHITECTURES + list(VARIANTS.get(config, {})) if a in runs]
        rows = runs["single"]["rows"]
        lines += [f"### {config} (rows train/valid/test: {rows['train']}/{rows['valid']}/{rows['test']})", "",
                  "| task | metric | " + " | ".join(labels) + " |", "| --- | --- |" + " ---: |" * len(labels)]
        gains: dict[str, list[float]] = {a: [] for a in labels}
        for task, kind in task_types(config).items():
            for i, metric in enumerate(SHOWN[kind]):
                values = [runs[a]["test"].get(task, {}).get(metric) for a in labels]
                if all(v is None for v in values):
                    continue
                best = max((v for v in values if v is not None), key=lambda v: -v if metric in ("rmse",) else v)
                cells = [f"**{fmt(v)}**" if v == best else fmt(v) for v in values]
                lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
                if i == 0:
                    for a, v in zip(labels, values, strict=True):
                        gains[a].append(gain(v, runs["single"]["test"][task].get(metric), metric))
        dm = {a: sum(g) / len(g) if g else math.nan for a, g in gains.items()}
        top = max(dm[a] for a in labels)
        lines.append("| **Δm% vs single** | primary | " + " | ".join(
            f"**{dm[a]:+.2f}%**" if dm[a] == top else f"{dm[a]:+.2f}%" for a in labels) + " |")
        lines += ["", "| architecture | train s | × single | wall s | peak RSS MB | epochs (best) | parameters |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        base = runs["single"]["train_seconds"]
        for a in labels:
            r = runs[a]
            best = r["best_epoch"].get("*", max(r["best_epoch"].values()))
            lines.append(f"| {a} | {r['train_seconds']} | {r['train_seconds'] / base:.2f}× | {r['wall_seconds'] or '—'} | "
                         f"{r['peak_rss_mb']} | {r['epochs_run']} ({best}) | {r['parameters']:,} |")
        flagged = [(a, f) for a in labels for f in (runs[a].get("expert_flags") or [])]
        gated = [a for a in labels if runs[a].get("expert_flags") is not None]
        if gated:
            lines += ["", "Expert collapse flags (validation split): " +
                      ("; ".join(f"{a}: {f}" for a, f in flagged) if flagged else f"none for {', '.join(gated)}.")]
        for a in labels:
            for task, f in (runs[a].get("funnels") or {}).items():
                lines.append(f"\nFunnel `{task}` after `{f['after']}` ({a}): {f['outside_parent']} of "
                             f"{f['positives']} training positives ({f['share']:.1%}) lack the parent.")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--only", default=None, help="comma-separated labels to (re)run; the rest are kept")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--collect", default=None, help="build the results from the run folders in this folder")
    p.add_argument("--render", action="store_true", help="only re-render the markdown from the saved JSON")
    args = p.parse_args()
    saved = OUT / "architectures.json"
    command = "python benchmarks/architectures.py " + " ".join(sys.argv[1:])
    if args.render:
        results = json.loads(saved.read_text())
        (OUT / "architectures.md").write_text(markdown(results, results[0]["command"]))
        return
    jobs = [j for j in plan(args.configs.split(",")) if not args.only or j[1] in args.only.split(",")]
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
    (OUT / "architectures.md").write_text(markdown(results, command))
    print(markdown(results, command))


if __name__ == "__main__":
    main()
