"""Wide first, then deep: fit each task's wide term alone to its best validation epoch, then train the deep path
on top of it.

Trained together from the start, one early-stopping epoch serves the deep path and every task's wide weights,
and the fine-grained tasks' linear terms stop short of the optimum their own logistic regression reaches. Here
the wide-only model (a per-task linear model; its tasks share nothing, so each keeps its own best epoch) is fitted
first; the full model then starts from its weights with the deep heads at zero, so its first output *is* the wide
model's and the epoch before any deep training is a candidate for the best checkpoint."""

from __future__ import annotations

import numpy as np
import torch

from ..balancing import BALANCERS
from ..config import EarlyStoppingConfig, ExperimentConfig
from ..data.batching import Encoded
from ..data.preprocess import Preprocessor
from ..model import MultiTaskModel
from ..tasks import Task
from .loop import FitResult, fit


def pretrain_wide(config: ExperimentConfig, preprocessor: Preprocessor, tasks: dict[str, Task], train: Encoded,
                  valid: Encoded, rng: np.random.Generator, device: torch.device) -> tuple[dict[str, torch.Tensor],
                                                                                         FitResult]:
    """The wide term's fitted weights (state-dict keys of `MultiTaskModel.wide`) and the fit's record."""
    wide = config.model.wide
    if wide is None or wide.pretrain is None:
        raise ValueError("pretrain_wide needs model.wide.pretrain")
    pre = wide.pretrain
    model_cfg = config.model.model_copy(update={"wide": wide.model_copy(update={"deep": False, "pretrain": None})})
    cfg = config.model_copy(update={"model": model_cfg})
    train_cfg = config.train.model_copy(update={
        "epochs": pre.epochs, "early_stopping": EarlyStoppingConfig(patience=pre.patience, monitor="valid.primary"),
        "conflict_every": None, "affinity_every": None, "warmup": 0.0, "schedule": "constant"})
    linear = {name: task for name, task in tasks.items() if task.text_feature is None}  # taggers have no wide term
    model = MultiTaskModel(cfg, preprocessor, linear).to(device)
    balancer = BALANCERS.get("equal")(list(linear), cfg, model)
    result = fit(model, linear, balancer, train, valid, train_cfg, rng, device, model_cfg=model_cfg)
    return {k: v.detach().clone() for k, v in model.wide.state_dict().items()}, result
