"""Device and reproducibility: CPU by default, CUDA when present; seeds for every generator."""

from __future__ import annotations

import random

import numpy as np
import torch

from ..errors import ConfigError


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda was asked for but no CUDA device is available; use `auto` or `cpu`")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def use_amp(choice: str, device: torch.device) -> bool:
    """Mixed precision: on with CUDA under `auto`; never on the CPU (it would be slower there)."""
    if choice == "on" and device.type != "cuda":
        raise ConfigError("train.amp: mixed precision needs a CUDA device; use `auto` or `off` on the CPU")
    return device.type == "cuda" and choice != "off"


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
