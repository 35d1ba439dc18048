"""Choose settings on the validation split: train a config under each combination of overrides and rank the
combinations by a validation figure (the test split is never looked at).

    python benchmarks/sweep_valid.py configs/shopping_guide.yaml --monitor mean_auc \
        --grid "train.lr=1e-3,3e-4" --grid "features.item_id=null,{type: categorical, min_count: 2}"

Each grid value is parsed as YAML; `null` under `features.<name>` removes that feature.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shopmtl.config import apply_overrides, config_from_dict, read_yaml  # noqa: E402
from shopmtl.experiment import Experiment  # noqa: E402


def valid_figure(metrics: dict, monitor: str) -> float:
    valid = metrics["valid"]
    if monitor == "loss":
        return sum(m["loss"] for m in valid.values())
    if monitor.startswith("mean_"):
        values = [m[monitor[5:]] for m in valid.values() if m.get(monitor[5:]) is not None]
        return sum(values) / len(values)
    task, metric = monitor.split(".")
    return valid[task][metric]


def split_grid(text: str) -> tuple[str, list[str]]:
    key, values = text.split("=", 1)
    parts, depth, current = [], 0, ""
    for ch in values:  # split on commas outside braces/brackets
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return key, [p.strip() for p in parts]


def drop_nulls(raw: dict) -> dict:
    raw["features"] = {k: v for k, v in raw["features"].items() if v is not None}
    return raw


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--grid", action="append", default=[])
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--monitor", default="loss", help="loss | mean_<metric> | <task>.<metric>")
    args = p.parse_args()
    grid = [split_grid(g) for g in args.grid]
    base = read_yaml(args.config)
    lower = args.monitor == "loss" or args.monitor.endswith(("rmse", "mae", "logloss"))
    results = []
    for combo in itertools.product(*[[f"{k}={v}" for v in values] for k, values in grid]):
        raw = drop_nulls(apply_overrides(base, [*args.set, "train.progress=false", *combo]))
        run = Experiment(config_from_dict(raw, args.config)).fit(save=False)
        figure = valid_figure(run.metrics, args.monitor)
        results.append((figure, combo, run.metrics["epochs_run"]))
        print(f"valid {args.monitor} {figure:.4f}  epochs {run.metrics['epochs_run']:>2}  {' '.join(combo)}", flush=True)
    results.sort(key=lambda r: r[0] if not math.isnan(r[0]) else math.inf, reverse=not lower)
    print("\nbest on validation:", " ".join(results[0][1]), f"({args.monitor} {results[0][0]:.4f})")
    print(yaml.safe_dump({"ranking": [{"valid": round(f, 4), "settings": list(c)} for f, c, _ in results]},
                         sort_keys=False, allow_unicode=True))


if __name__ == "__main__":
    main()
