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

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..balancing import BALANCERS
from ..config import EarlyStoppingConfig, ExperimentConfig, WidePretrainConfig
from ..data.batching import Encoded
from ..data.preprocess import FIRST, WEIGHT, Preprocessor
from ..features.sparse import WideTerm
from ..model import MultiTaskModel, token_ids
from ..tasks import Task
from ..tasks.tagging import TaggingHead
from .loop import fit
from .monitor import Monitor

log = logging.getLogger("shopmtl")


def fit_key(pre: WidePretrainConfig, what: str, arrays: list[np.ndarray]) -> str:
    """A digest of everything one task's L-BFGS fit reads: the solver settings, what is fitted (`what`: the task,
    its type and metric, the fitted tensors' shapes) and its inputs (targets, masks and features of both splits).
    Equal digests give the same fit (it is deterministic and draws no random numbers), so a comparison fits it
    once for all its seeds and variants."""
    digest = hashlib.sha256(json.dumps(pre.model_dump(), sort_keys=True).encode())
    digest.update(what.encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:24]


def _linear_inputs(term: WideTerm, task: Task, train: Encoded, valid: Encoded) -> tuple[str, list[np.ndarray]]:
    arrays = [a for split in (train, valid) for a in
              [split.targets[task.name], split.masks[task.name]]
              + [split.features[f + suffix] for f in term.names for suffix in ("", WEIGHT)]]
    return f"{task.name}:{type(task).__name__}:{task.primary}:{tuple(term.table.weight.shape)}", arrays


def _tagger_inputs(head: TaggingHead, task: Task, train: Encoded, valid: Encoded) -> tuple[str, list[np.ndarray]]:
    text = task.text_feature
    arrays = [a for split in (train, valid) for a in
              [split.targets[task.name], split.masks[task.name]]
              + [split.features[k] for k in (text, text + FIRST) if k in split.features]]
    shapes = [tuple(p.shape) for p in head.window.parameters()] + [head.crf is not None]
    return f"{task.name}:{type(task).__name__}:{task.primary}:{shapes}", arrays


def _cached_fit(parts: dict[str, torch.nn.Module], cache: Path | None, pre: WidePretrainConfig,
                key: tuple[str, list[np.ndarray]], name: str, fit_now: Callable[[], tuple[float, dict[str, float]]],
                device: torch.device) -> tuple[dict[str, Any], bool]:
    """`fit_now()` fits the modules in `parts` in place, unless `cache` holds the fit of these inputs: then it is
    loaded into them. Returns the fit's record (C, valid_by_C, seconds) and whether it came from the cache."""
    stored = Path(cache) / f"{name}-{fit_key(pre, *key)}.pt" if cache is not None else None
    if stored is not None and stored.is_file():
        saved = torch.load(stored, map_location=device, weights_only=True)
        fitted = json.loads(saved.pop("__record__").numpy().tobytes())
        for part, module in parts.items():
            module.load_state_dict({k.split("/", 1)[1]: v for k, v in saved.items() if k.startswith(part + "/")})
        log.info("wide %s: the L-BFGS fit of these inputs is read from %s", name, stored)
        return fitted, True
    began = time.perf_counter()
    chosen, scores = fit_now()
    fitted = {"C": chosen, "valid_by_C": scores, "seconds": round(time.perf_counter() - began, 2)}
    if stored is not None:
        _store(stored, {f"{part}/{k}": v for part, m in parts.items() for k, v in m.state_dict().items()}, fitted)
    return fitted, False


def pretrain(model: MultiTaskModel, config: ExperimentConfig, preprocessor: Preprocessor, tasks: dict[str, Task],
             train: Encoded, valid: Encoded, rng: np.random.Generator, device: torch.device,
             cache: Path | None = None) -> dict[str, Any]:
    """`model.wide.pretrain`: fit every task's wide term alone, and with L-BFGS every window-feature tagger's
    feature CRF; start `model` from those fits with its deep outputs at zero. Returns the record of the fits."""
    pre = config.model.wide.pretrain if config.model.wide is not None else None
    if pre is None:
        raise ValueError("pretrain needs model.wide.pretrain")
    record: dict[str, Any] = {"solver": pre.solver, "seconds": 0.0}
    if len(model.wide):
        state, record = pretrain_wide(config, preprocessor, tasks, train, valid, rng, device, cache)
        model.start_from_wide(state, pre.freeze)
    taggers = [name for name in model.window_of if name in tasks] if pre.solver == "lbfgs" and pre.taggers else []
    for name in taggers:
        head, task = model.heads[name], tasks[name]
        parts = {"window": head.window, **({"crf": head.crf} if head.crf is not None else {})}
        fitted, cached = _cached_fit(parts, cache, pre, _tagger_inputs(head, task, train, valid), name,
                                     lambda h=head, t=task: fit_tagger_lbfgs(h, t, train, valid, pre, device),
                                     device)
        _note(record, name, fitted, cached)
        record["seconds"] = round(record["seconds"] + (0.0 if cached else fitted["seconds"]), 2)
        model.start_tagger_from_fit(name, pre.freeze)
    _total(record)
    return record


def _note(record: dict[str, Any], name: str, fitted: dict[str, Any], cached: bool) -> None:
    """One task's fit in the record of the pretraining."""
    record.setdefault("C", {})[name] = fitted["C"]
    record.setdefault("valid_by_C", {})[name] = fitted["valid_by_C"]
    record.setdefault("fit_seconds", {})[name] = fitted["seconds"]
    if cached:
        record.setdefault("cached", []).append(name)


def _total(record: dict[str, Any]) -> None:
    """With fits read from the cache: what they all cost, as if they had run here (`seconds`: what they took)."""
    if "cached" in record:
        record["fit_seconds_total"] = round(sum(record["fit_seconds"].values()), 2)


def pretrain_wide(config: ExperimentConfig, preprocessor: Preprocessor, tasks: dict[str, Task], train: Encoded,
                  valid: Encoded, rng: np.random.Generator, device: torch.device, cache: Path | None = None
                  ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The wide term's fitted weights (state-dict keys of `MultiTaskModel.wide`) and a record of the fit. With
    `cache` (a folder), an L-BFGS fit of the same inputs done before is read from it, and a new one stored."""
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
        record: dict[str, Any] = {"solver": "lbfgs"}
        for name, task in linear.items():
            term = model.wide[name]
            fitted, cached = _cached_fit({"term": term}, cache, pre, _linear_inputs(term, task, train, valid), name,
                                         lambda m=term, t=task: fit_lbfgs(m, t, train, valid, pre, device), device)
            _note(record, name, fitted, cached)
    else:
        train_cfg = config.train.model_copy(update={
            "epochs": pre.epochs, "early_stopping": EarlyStoppingConfig(patience=pre.patience,
                                                                        monitor="valid.primary"),
            "conflict_every": None, "affinity_every": None, "warmup": 0.0, "schedule": "constant"})
        balancer = BALANCERS.get("equal")(list(linear), cfg, model)
        result = fit(model, linear, balancer, train, valid, train_cfg, rng, device, model_cfg=model_cfg)
        record = {"solver": "adam", "best_epoch": result.best_epoch, "epochs_run": len(result.history)}
    record["seconds"] = round(time.perf_counter() - start, 2)
    _total(record)
    return {k: v.detach().clone() for k, v in model.wide.state_dict().items()}, record


def _store(path: Path, state: dict[str, torch.Tensor], fitted: dict[str, Any]) -> None:
    """One task's fitted wide term and its record, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = torch.frombuffer(bytearray(json.dumps(fitted).encode()), dtype=torch.uint8)
    partial = path.with_suffix(".part")
    torch.save({**{k: v.detach().cpu() for k, v in state.items()}, "__record__": blob}, partial)
    partial.replace(path)


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


def c_path(params: list[torch.Tensor], objective: Callable[[float], torch.Tensor], score: Callable[[], float],
           pre: WidePretrainConfig, judge: Monitor, name: str) -> tuple[float, dict[str, float]]:
    """Fit `params` (leaf tensors, in place) by full-batch L-BFGS on `objective(C)` for each C of the ascending
    grid, each fit warm-started from the last, until `patience` values in a row score no better on validation;
    then `refine` rounds at the geometric midpoints between the best C and its tried neighbours, warm-started from
    the best fit. Leaves `params` at the best fit; returns its C and the validation score per C tried."""
    scores: dict[float, float] = {}

    def fit_at(c: float, init: list[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        began = time.perf_counter()
        with torch.no_grad():
            for p, v in zip(params, init, strict=True):
                p.copy_(v)
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=pre.max_iter, history_size=10,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-10)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = objective(c)
            loss.backward()
            return loss

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            opt.step(closure)
        with torch.no_grad():
            value = score()
        scores[c] = value
        log.info("wide %s, C=%g: valid %s %.4f (%.1f s)", name, c, judge.metric, value,
                 time.perf_counter() - began)
        return value, [p.detach().clone() for p in params]

    at = [p.detach().clone() for p in params]
    best: tuple[float, float, list[torch.Tensor]] | None = None
    stale = 0
    for c in pre.C:
        value, at = fit_at(c, at)
        if best is None or judge.better(value, best[1]):
            best, stale = (c, value, at), 0
        else:
            stale += 1
            if stale >= pre.patience:
                break
    assert best is not None
    for _ in range(pre.refine):
        tried = sorted(scores)
        i = tried.index(best[0])
        for c in [(tried[j] * best[0]) ** 0.5 for j in (i - 1, i + 1) if 0 <= j < len(tried)]:
            value, fitted = fit_at(c, best[2])
            if judge.better(value, best[1]):
                best = (c, value, fitted)
    with torch.no_grad():
        for p, v in zip(params, best[2], strict=True):
            p.copy_(v)
    return best[0], {f"{c:.4g}": v for c, v in sorted(scores.items())}


def fit_lbfgs(term: WideTerm, task: Task, train: Encoded, valid: Encoded, pre: WidePretrainConfig,
              device: torch.device) -> tuple[float, dict[str, float]]:
    """Fit one task's wide term in place (a logistic regression / ridge over its sparse features); returns the
    chosen C and the validation primary metric per C."""
    rows = np.flatnonzero(train.masks[task.name])
    x, xt = design_matrix(term, train.features, rows, device)
    y = torch.as_tensor(train.targets[task.name][rows], device=device)
    v_rows = np.flatnonzero(valid.masks[task.name])
    xv, _ = design_matrix(term, valid.features, v_rows, device)
    yv = valid.targets[task.name][v_rows]
    groups = valid.groups[task.name][v_rows] if task.name in valid.groups else None
    weight = torch.zeros_like(term.table.weight, requires_grad=True)
    bias = torch.zeros_like(term.bias, requires_grad=True)

    def objective(c: float) -> torch.Tensor:
        penalty = 1.0 / (2.0 * c * len(rows))
        return task.row_loss(_SparseProduct.apply(x, xt, weight) + bias, y) + penalty * weight.pow(2).sum()

    def score() -> float:
        return task.metrics(yv, task.predict(xv @ weight + bias), groups)[task.primary]

    judge = Monitor(task.name, task.primary, task.higher_is_better(task.primary))
    chosen, scores = c_path([weight, bias], objective, score, pre, judge, task.name)
    with torch.no_grad():
        term.table.weight.copy_(weight)
        term.bias.copy_(bias)
    return chosen, scores


def _token_rows(split: Encoded, task: Task, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """A tagger's labelled rows: token ids and mask [N, longest row] and the tag targets [N, max_len]."""
    rows = np.flatnonzero(split.masks[task.name])
    text = task.text_feature
    feats = {k: torch.as_tensor(split.features[k][rows], device=device) for k in (text, text + FIRST)
             if k in split.features}
    ids = token_ids(feats, text)
    mask = ids != 0
    length = max(int(mask.sum(1).max()) if len(rows) else 1, 1)
    return ids[:, :length], mask[:, :length], split.targets[task.name][rows]


def fit_tagger_lbfgs(head: TaggingHead, task: Task, train: Encoded, valid: Encoded, pre: WidePretrainConfig,
                     device: torch.device) -> tuple[float, dict[str, float]]:
    """Fit a tagger's feature CRF in place: its window term and CRF transitions, the deep path left out (the
    emission layer is not read), mean row negative log-likelihood + ‖W‖² / (2·C·n) over the window weights —
    the objective of the CRF baseline (crfsuite's L2, c2 = 1 / (2C)) on the same window template. Returns the
    chosen C and the validation span F1 (the task's primary metric) per C."""
    if head.window is None:
        raise ValueError(f"tasks.{task.name}: a tagger is fitted first only over its window features "
                         f"(window_features: true)")
    ids, mask, target = _token_rows(train, task, device)
    v_ids, v_mask, v_target = _token_rows(valid, task, device)
    y = torch.as_tensor(target[:, : ids.shape[1]], device=device)
    ok = mask & (y >= 0)
    weights = [p for p in head.window.parameters()]
    crf = list(head.crf.parameters()) if head.crf is not None else []
    n = max(len(y), 1)

    def objective(c: float) -> torch.Tensor:
        emissions = head.window(ids)
        if head.crf is not None:
            nll = -head.crf.log_likelihood(emissions, y, ok).sum()
        else:
            nll = torch.nn.functional.cross_entropy(emissions[ok], y[ok], reduction="sum")
        return nll / n + sum(w.pow(2).sum() for w in weights) / (2.0 * c * n)

    def score() -> float:
        emissions = head.window(v_ids)
        tags = head.crf.decode(emissions, v_mask) if head.crf is not None else \
            emissions.argmax(-1).masked_fill(~v_mask, -1)
        pred = np.full(v_target.shape, -1, dtype=np.int64)
        width = min(pred.shape[1], tags.shape[1])
        pred[:, :width] = tags[:, :width].cpu().numpy()
        return task.metrics(v_target, pred)[task.primary]

    judge = Monitor(task.name, task.primary, task.higher_is_better(task.primary))
    return c_path(weights + crf, objective, score, pre, judge, task.name)
