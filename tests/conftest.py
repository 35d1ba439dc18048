"""Shared fixtures: the real data folder (skip where absent, fail under CI=true) and small synthetic tables."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHOPMTL_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: tests that need it skip where it is absent, and fail when CI=true (CI always has it)."""
    if not SHARED_DATA.is_dir():
        message = f"real datasets not found at {SHARED_DATA} (set SHOPMTL_DATA_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " — CI must have them")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _quiet_and_isolated(monkeypatch, tmp_path):
    """Run every test in its own folder, with the shared data reachable by absolute path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOPMTL_DATA_DIR", str(SHARED_DATA))
    monkeypatch.setenv("SHOPMTL_CACHE", str(tmp_path / "cache"))


def synthetic_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Mechanics-only data: two features that drive two related labels, plus text and a regression target."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    words = np.where(colour == "red", "bright warm dress", "calm cool shirt")
    signal = (colour == "red").astype(float) * 1.5 + size
    return pd.DataFrame({
        "colour": colour,
        "size": size,
        "text": [f"{w} item {i % 7}" for i, w in enumerate(words)],
        "liked": (signal + rng.normal(scale=0.5, size=n) > 0.75).astype(int),
        "kind": np.where(signal > 1.0, "a", np.where(signal > 0.0, "b", "c")),
        "score": signal * 2 + rng.normal(scale=0.1, size=n),
        "tags": [",".join(t for t, keep in (("x", s > 0), ("y", c == "red")) if keep) for s, c in zip(size, colour, strict=True)],
    })


def synthetic_config(path: Path, data: Path, **changes) -> Path:
    """A small experiment file over a synthetic CSV; `changes` replace top-level sections."""
    cfg = {
        "name": "synthetic",
        "output_dir": str(path.parent / "runs"),
        "data": {"source": {"format": "csv", "path": str(data)}, "split": {"by": "random", "valid": 0.2, "test": 0.2}},
        "features": {"colour": {"type": "categorical"}, "size": {"type": "numeric"},
                     "text": {"type": "text", "max_len": 8, "min_count": 1}},
        "tasks": {"liked": {"type": "binary"}, "kind": {"type": "multiclass"},
                  "score": {"type": "regression"}},
        "model": {"architecture": "shared_bottom", "bottom_layers": [16], "tower_layers": [8],
                  "text": {"encoder": "bag", "embed_dim": 8}},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "progress": False},
    }
    cfg.update(changes)
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def synthetic_csv(tmp_path) -> Path:
    path = tmp_path / "synthetic.csv"
    synthetic_frame().to_csv(path, index=False)
    return path


@pytest.fixture
def synthetic_yaml(tmp_path, synthetic_csv) -> Path:
    return synthetic_config(tmp_path / "synthetic.yaml", synthetic_csv)
