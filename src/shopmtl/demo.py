"""The main job: train the review tasks together (shared_bottom) and alone (single), print who gains."""

from __future__ import annotations

import math
import time
from importlib import resources
from pathlib import Path

import yaml

from .analysis.compare import comparison_rows, format_comparison
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


def run_demo(data_dir: str | None = None, output_dir: str = "runs", epochs: int | None = None,
             limit: int | None = None) -> list[dict]:
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
    rows = comparison_rows(runs["single"], {"shared_bottom": runs["shared_bottom"]}, split="test")
    print("\nTest split, each task alone (single) vs all four in one model (shared_bottom):")
    print(format_comparison(rows, ["shared_bottom"]))
    ratio = seconds["shared_bottom"] / seconds["single"] if seconds["single"] else math.nan
    n_single = runs["single"].metrics["parameters"]
    n_multi = runs["shared_bottom"].metrics["parameters"]
    print(f"\ntraining time: single {seconds['single']:.0f} s, shared_bottom {seconds['shared_bottom']:.0f} s "
          f"({ratio:.2f}×); parameters: single {n_single:,}, shared_bottom {n_multi:,}")
    return rows
