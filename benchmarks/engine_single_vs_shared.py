"""Benchmark for the engine issue: for each example config, `single` vs `shared_bottom` on the real data.

Each run is its own process (`shopmtl train`), so its peak memory (max RSS) and wall time are its own. Settings
come from the configs (chosen on validation splits; early stopping monitors the validation split); the figures
reported are the test split's. Writes benchmarks/results/engine_single_vs_shared.{json,md}.

    python benchmarks/engine_single_vs_shared.py [--configs reviews,shopping_guide] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from common import OUT, ROOT, SHOWN, gain, machine, task_types, train

CONFIGS = ["shopping_guide", "user_profile", "reviews", "catalog"]
ARCHITECTURES = ["single", "shared_bottom"]


def markdown(results: list[dict], command: str) -> str:
    lines = [machine(), ""]
    for config in dict.fromkeys(r["config"] for r in results):
        by_arch = {r["architecture"]: r for r in results if r["config"] == config}
        single, shared = by_arch["single"], by_arch["shared_bottom"]
        rows = single["rows"]
        lines += [f"### {config} (rows train/valid/test: {rows['train']}/{rows['valid']}/{rows['test']})", "",
                  f"Command: `{single.get('command', command)}`", "",
                  "| task | metric | single | shared_bottom | gain |", "| --- | --- | ---: | ---: | ---: |"]
        gains = []
        for task, kind in task_types(config).items():
            for i, metric in enumerate(SHOWN[kind]):
                a, b = single["test"][task].get(metric), shared["test"][task].get(metric)
                if a is None and b is None:
                    continue  # e.g. GAUC for a task without a group column
                g = gain(b, a, metric)
                if i == 0 and not math.isnan(g):
                    gains.append(g)
                fa = "—" if a is None else f"{a:.4f}"
                fb = "—" if b is None else f"{b:.4f}"
                lines.append(f"| {task} | {metric} | {fa} | {fb} | {g:+.2f}% |")
        mean = sum(gains) / len(gains) if gains else math.nan
        lines += ["", f"Δm% of shared_bottom against single (primary metric per task): **{mean:+.2f}%**", "",
                  "| architecture | train s | wall s (incl. reading data) | peak RSS MB | epochs | parameters |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for arch in ARCHITECTURES:
            r = by_arch[arch]
            lines.append(f"| {arch} | {r['train_seconds']} | {r['wall_seconds']} | {r['peak_rss_mb']} | "
                         f"{r['epochs_run']} | {r['parameters']:,} |")
        ratio = shared["train_seconds"] / single["train_seconds"]
        lines += ["", f"shared_bottom trains in {ratio:.2f}× the time of the separate per-task models (`single`).", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--render", action="store_true", help="only re-render the markdown from the saved JSON")
    args = p.parse_args()
    if args.render:
        saved = json.loads((OUT / "engine_single_vs_shared.json").read_text())
        command = saved[0].get("command", "python benchmarks/engine_single_vs_shared.py")
        (OUT / "engine_single_vs_shared.md").write_text(markdown(saved, command))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    runs = ROOT / "benchmarks" / "out" / time.strftime("%Y%m%d-%H%M%S")
    results = []
    for config in args.configs.split(","):
        for arch in ARCHITECTURES:
            print(f"{config} / {arch} …", flush=True)
            results.append(train(config, arch, args.data_dir, runs, [f"model.architecture={arch}"]))
            print(f"   {results[-1]['train_seconds']} s, peak {results[-1]['peak_rss_mb']} MB", flush=True)
    command = ("python benchmarks/engine_single_vs_shared.py " + " ".join(sys.argv[1:])).strip()
    for r in results:
        r["command"] = command
    saved = OUT / "engine_single_vs_shared.json"
    if saved.exists():  # keep the other configs' results from earlier runs
        done = {r["config"] for r in results}
        results = [r for r in json.loads(saved.read_text()) if r["config"] not in done] + results
        results.sort(key=lambda r: CONFIGS.index(r["config"]) if r["config"] in CONFIGS else len(CONFIGS))
    (OUT / "engine_single_vs_shared.json").write_text(json.dumps(results, indent=2))
    (OUT / "engine_single_vs_shared.md").write_text(markdown(results, command))
    print(markdown(results, command))


if __name__ == "__main__":
    main()
