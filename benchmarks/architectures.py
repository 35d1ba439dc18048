"""Benchmark for the architectures issue: every sharing architecture against `single` on the shopping guide
(Taobao CIKM-2019: click, fav, cart, buy with AUC and GAUC by user) and on the reviews config, plus funnel variants.

Each run is its own `shopmtl train` process; with --jobs 2 two run side by side, each on one PyTorch thread, so
their times compare within this run. Settings come from the configs (chosen on validation splits); the figures
are the test split's. Writes benchmarks/results/architectures.{json,md}.

    python benchmarks/architectures.py [--configs shopping_guide,reviews] [--jobs 2] [--data-dir ../shared/data]
"""

from __future__ import annotations

import math

from common import SHOWN, benchmark_main, fmt, gain, machine, task_types

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


if __name__ == "__main__":
    benchmark_main("architectures", CONFIGS, lambda configs, args: plan(configs), markdown)
