"""What the analysis adds to a training run: look-ahead affinity and the gradient-conflict monitor (every 50 steps,
during training) and integrated-gradient explanations of 200 validation rows (after training), against the same
run with all three off. Two epochs per run; `on` and `off` of one config train side by side (one thread each).

    python benchmarks/analysis_overhead.py [--configs shopping_guide,reviews] [--jobs 2]
"""

from __future__ import annotations

from common import benchmark_main, machine

OFF = ["train.affinity_every=null", "train.conflict_every=null", "report.explain_rows=0"]
BASE = ["train.epochs=2", "train.early_stopping=null"]


def plan(configs: list[str], args) -> list[tuple[str, str, list[str]]]:  # noqa: ANN001
    return [(c, label, BASE + extra) for c in configs for label, extra in (("off", OFF), ("on", []))]


def markdown(results: list[dict], command: str) -> str:
    lines = [machine(), "", f"Command: `{command}`", "",
             "| config | train s off | train s on | ratio | wall s off | wall s on | ratio |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    by = {(r["config"], r["architecture"]): r for r in results}
    for config in dict.fromkeys(r["config"] for r in results):
        off, on = by.get((config, "off")), by.get((config, "on"))
        if not off or not on:
            continue
        lines.append(f"| {config} | {off['train_seconds']:.1f} | {on['train_seconds']:.1f} | "
                     f"{on['train_seconds'] / off['train_seconds']:.2f}× | {off['wall_seconds']:.1f} | "
                     f"{on['wall_seconds']:.1f} | {on['wall_seconds'] / off['wall_seconds']:.2f}× |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    benchmark_main("analysis_overhead", ["shopping_guide", "reviews"], plan, markdown)
