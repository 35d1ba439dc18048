"""Wide first, then deep: fit each task's wide term alone to its validation optimum, then train the deep path
on top of it.

Trained together from the start, one early-stopping epoch serves the deep path and every task's wide weights,
and the fine-grained tasks' linear terms stop short of the optimum their own logistic regression reaches. Here
the wide-only model (a per-task linear model) is fitted first, by one of two solvers:

- `adam`: the training loop on the wide-only model, whose tasks share nothing, so each keeps its own best epoch;
- `lbfgs`: per task, full-batch L-BFGS on the task's own loss + ‖W‖² / (2·C·n) over the design matrix of its
  sparse features, for each C of an ascending grid (warm-started), keeping the C with the best validation
  primary metric — the same optimum scikit-learn's logistic regression (or ridge) reaches on those features.

The full model then starts from these weights with its deep heads at zero, so its first output *is* the wide
model's, and that start stays a candidate per task (`training/loop.py`)."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
import torch

from ..balancing import BALANCERS
from ..config import EarlyStoppingConfig, ExperimentConfig, WidePretrainConfig
from ..data.batching import Encoded
from ..data.preprocess import WEIGHT, Preprocessor
from ..features.sparse import WideTerm
from ..model import MultiTaskModel
from ..tasks import Task
from .loop import fit
from .monitor import Monitor

log = logging.getLogger("shopmtl")


def pretrain_wide(config: ExperimentConfig, preprocessor: Preprocessor, tasks: dict[str, Task], train: Encoded,
                  valid: Encoded, rng: np.random.Generator, device: torch.device
                  ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The wide term's fitted weights (state-dict keys of `MultiTaskModel.wide`) and a record of the fit."""
    wide = config.model.wide
    if wide is None or wide.pretrain is None:
        raise ValueError("pretrain_wide needs model.wide.pretrain")
    pre = wide.pretrain
    model_cfg = config.model.model_copy(update={"wide": wide.model_copy(update={"deep": False, "pretrain": None})})
    cfg = config.model_copy(update={"model": model_cfg})
    linear = {name: task for name, task in tasks.items() if task.text_feature is None}  # taggers have no wide term
    model = MultiTaskModel(cfg, preprocessor, linear).to(device)
    start = time.perf_counter()
    if pre.solver == "lbfgs":
        record: dict[str, Any] = {"solver": "lbfgs", "C": {}, "valid_by_C": {}}
        for name, task in linear.items():
            chosen, scores = fit_lbfgs(model.wide[name], task, train, valid, pre, device)
            record["C"][name], record["valid_by_C"][name] = chosen, scores
    else:
        train_cfg = config.train.model_copy(update={
            "epochs": pre.epochs, "early_stopping": EarlyStoppingConfig(patience=pre.patience,
                                                                        monitor="valid.primary"),
            "conflict_every": None, "affinity_every": None, "warmup": 0.0, "schedule": "constant"})
        balancer = BALANCERS.get("equal")(list(linear), cfg, model)
        result = fit(model, linear, balancer, train, valid, train_cfg, rng, device, model_cfg=model_cfg)
        record = {"solver": "adam", "best_epoch": result.best_epoch, "epochs_run": len(result.history)}
    record["seconds"] = round(time.perf_counter() - start, 2)
    return {k: v.detach().clone() for k, v in model.wide.state_dict().items()}, record


class _SparseProduct(torch.autograd.Function):
    """x @ W for a sparse CSR x, whose gradient x^T @ g takes the transposed CSR given with it (10× faster than
    autograd through a COO product)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, xt: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.xt = xt
        return x @ weight

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, ctx.xt @ grad


def design_matrix(term: WideTerm, features: dict[str, np.ndarray], rows: np.ndarray,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The sparse [rows, table rows] matrix whose product with the term's table is what its `EmbeddingBag` sums
    for those rows (before the bias), and its transpose, both CSR."""
    r_parts, c_parts, v_parts = [], [], []
    for k, name in enumerate(term.names):
        ids, weights = features[name][rows], features[name + WEIGHT][rows]
        flat = (weights * (ids != 0)).reshape(-1).astype(np.float32)
        keep = flat != 0
        r_parts.append(np.repeat(np.arange(len(rows)), ids.shape[1])[keep])
        c_parts.append(ids.reshape(-1)[keep] + int(term.offsets[k]))
        v_parts.append(flat[keep])
    index = torch.from_numpy(np.stack([np.concatenate(r_parts), np.concatenate(c_parts)]).astype(np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # CSR support is marked beta
        coo = torch.sparse_coo_tensor(index, torch.from_numpy(np.concatenate(v_parts)),
                                      (len(rows), term.table.num_embeddings), check_invariants=False).coalesce()
        return coo.to_sparse_csr().to(device), coo.t().coalesce().to_sparse_csr().to(device)


def fit_lbfgs(term: WideTerm, task: Task, train: Encoded, valid: Encoded, pre: WidePretrainConfig,
              device: torch.device) -> tuple[float, dict[str, float]]:
    """Fit one task's wide term in place; returns the chosen C and the validation primary metric per C."""
    rows = np.flatnonzero(train.masks[task.name])
    x, xt = design_matrix(term, train.features, rows, device)
    y = torch.as_tensor(train.targets[task.name][rows], device=device)
    v_rows = np.flatnonzero(valid.masks[task.name])
    xv, _ = design_matrix(term, valid.features, v_rows, device)
    yv = valid.targets[task.name][v_rows]
    groups = valid.groups[task.name][v_rows] if task.name in valid.groups else None
    weight = torch.zeros_like(term.table.weight, requires_grad=True)
    bias = torch.zeros_like(term.bias, requires_grad=True)
    metric = task.primary
    judge = Monitor(task.name, metric, task.higher_is_better(metric))
    best: tuple[float, float, torch.Tensor, torch.Tensor] | None = None
    scores: dict[str, float] = {}
    stale = 0
    for c in pre.C:
        began = time.perf_counter()
        penalty = 1.0 / (2.0 * c * len(rows))
        opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=pre.max_iter, history_size=10,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-10)

        def closure(opt: torch.optim.LBFGS = opt, penalty: float = penalty) -> torch.Tensor:
            opt.zero_grad()
            loss = task.row_loss(_SparseProduct.apply(x, xt, weight) + bias, y) + penalty * weight.pow(2).sum()
            loss.backward()
            return loss

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            opt.step(closure)
        with torch.no_grad():
            pred = task.predict(xv @ weight + bias)
        value = task.metrics(yv, pred, groups)[metric]
        scores[str(c)] = value
        log.info("wide %s, C=%g: valid %s %.4f (%.1f s)", task.name, c, metric, value, time.perf_counter() - began)
        if best is None or judge.better(value, best[1]):
            best, stale = (c, value, weight.detach().clone(), bias.detach().clone()), 0
        else:
            stale += 1
            if stale >= pre.patience:
                break
    assert best is not None
    with torch.no_grad():
        term.table.weight.copy_(best[2])
        term.bias.copy_(best[3])
    return best[0], scores
