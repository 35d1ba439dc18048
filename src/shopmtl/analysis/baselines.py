"""The per-task models a practitioner would train instead of one multi-task model, on the same split and rows,
scored by the same task code (`Task.metrics`) as the models:

- `linear`: TF-IDF of every text feature (token 1–2-grams; 1–3-grams where the text is read as Chinese
  characters) next to one-hot categoricals, binarised multi-hot sets and standardised numbers, then a logistic
  regression per binary / multiclass / multilabel task (one per label) and a ridge per regression task;
- `lightgbm`: gradient-boosted trees on the tabular features (categorical ids, numbers, multi-hot sets as binary
  columns; text is left to `linear`), the number of trees chosen by early stopping on the validation split;
- `crf`: a linear-chain CRF (sklearn-crfsuite) over token-window features per tagging task.

Each baseline's regularisation is chosen per task on the validation split (C, alpha, leaves, c1/c2); the best
family per task is chosen on the validation split too. A baseline is one module entry registered by name."""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..registry import Registry

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

    from ..config import ExperimentConfig
    from ..tasks import Task

log = logging.getLogger("shopmtl")

C_GRID = (0.1, 1.0, 10.0, 100.0)
ALPHA_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
LEAVES_GRID = (15, 63)
CRF_GRID = ((0.1, 0.1), (0.05, 0.01))
MAX_LIGHTGBM_CLASSES = 100
MULTIHOT_COLUMNS = 64


@dataclass
class BaselineData:
    """An experiment's split rows and fitted tasks, with the inputs each baseline builds computed once."""

    config: ExperimentConfig
    frames: dict[str, pd.DataFrame]
    tasks: dict[str, Task]
    threads: int = 1
    seed: int = 0
    cache: dict[str, Any] = field(default_factory=dict)
    only: dict[str, np.ndarray] | None = None  # split → the rows a model is fitted and chosen on (None: all)

    def splits(self) -> list[str]:
        return [s for s in ("train", "valid", "test") if s in self.frames and len(self.frames[s])]

    def labels(self, task: Task, split: str) -> tuple[np.ndarray, np.ndarray]:
        target, mask = task.encode(task.label_values(self.frames[split]))
        if self.only is not None:
            mask = mask & self.only[split]
        return target, mask

    def given(self, parent: Task) -> BaselineData:
        """The same inputs, with models fitted and chosen only on rows where `parent` is 1 (a funnel's
        p(child | parent)); predictions still cover every row."""
        only = {}
        for split in self.splits():
            target, mask = parent.encode(parent.label_values(self.frames[split]))
            only[split] = mask & (target > 0.5)
        return BaselineData(self.config, self.frames, self.tasks, self.threads, self.seed, self.cache, only)

    def groups(self, task: Task, split: str) -> np.ndarray | None:
        col = task.group_column
        frame = self.frames[split]
        return frame[col].to_numpy() if col and col in frame.columns else None

    def inputs(self, key: str, build: Callable[[BaselineData], dict[str, Any]]) -> dict[str, Any]:
        if key not in self.cache:
            self.cache[key] = build(self)
        return self.cache[key]

    def score(self, task: Task, split: str, pred: np.ndarray) -> dict[str, float]:
        target, mask = self.labels(task, split)
        groups = self.groups(task, split)
        return task.metrics(target[mask], pred[mask], groups[mask] if groups is not None else None)


class Baseline(ABC):
    """One family of per-task models: which tasks it serves, and how it fits one (its setting chosen on valid)."""

    name: str = ""
    label: str = ""  # the family's name in a table

    def label_for(self, task: Task) -> str:
        """What the model fitted for `task` is called (a family may fit different models per task type)."""
        return self.label

    @abstractmethod
    def applies(self, task: Task, data: BaselineData) -> bool:
        """Whether this family has a model for `task` (its type, and the inputs it needs)."""

    @abstractmethod
    def fit(self, task: Task, data: BaselineData) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(the chosen setting, predictions per split in `Task.predict`'s form)."""


BASELINES: Registry[type[Baseline]] = Registry("baseline", "--baselines")


def _choose(task: Task, data: BaselineData, candidates: list[tuple[dict[str, Any], Callable[[str], np.ndarray]]]
            ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The candidate whose validation primary metric is best, with its predictions on every split."""
    sign = 1.0 if task.higher_is_better(task.primary) else -1.0
    best, best_value = None, -math.inf
    for setting, predict in candidates:
        value = data.score(task, "valid", predict("valid"))[task.primary]
        value = -math.inf if value is None or math.isnan(value) else sign * value
        if best is None or value > best_value:
            best, best_value = (setting, predict), value
    setting, predict = best
    return setting, {s: predict(s) for s in data.splits()}


# ---------------------------------------------------------------- linear: TF-IDF + logistic regression / ridge
def token_lists(feature: Any, values: pd.Series) -> list[list[str]]:
    from ..data.text import is_tokens, tokenize

    return [tokenize(v, feature.tokenizer, feature.lowercase)[: feature.max_len]
            if isinstance(v, str) or is_tokens(v) else [] for v in values.tolist()]


def reads_characters(rows: list[list[str]]) -> bool:
    """True when most tokens are single CJK characters (Chinese read character by character)."""
    tokens = [t for row in rows[:2000] for t in row]
    cjk = sum(len(t) == 1 and ("\u3400" <= t <= "\u9fff" or "\uf900" <= t <= "\ufaff") for t in tokens)
    return bool(tokens) and cjk / len(tokens) > 0.5


class NGrams:
    """Token n-grams of `low`..`high` tokens, as the analyzer of a scikit-learn vectorizer (picklable)."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def __call__(self, tokens: list[str]) -> list[str]:
        from ..data.preprocess import ngram_tokens

        return ngram_tokens(tokens, self.low, self.high)


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def linear_inputs(data: BaselineData) -> dict[str, csr_matrix]:
    """One sparse matrix per split: every feature encoded for a linear model, fitted on the training rows."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.preprocessing import OneHotEncoder

    from ..data.preprocess import MultiHotProcessor, NumericProcessor, as_keys

    cfg, frames = data.config, data.frames
    blocks: dict[str, list[Any]] = {s: [] for s in data.splits()}
    for name, feature in cfg.features.items():
        column = cfg.feature_column(name)
        if feature.type == "sparse":  # the model's own hashed features: the baseline builds its TF-IDF itself
            continue
        if feature.type == "text":
            rows = {s: token_lists(feature, frames[s][column]) for s in blocks}
            grams = NGrams(1, 3) if reads_characters(rows["train"]) else NGrams(1, 2)
            vec = TfidfVectorizer(analyzer=grams, min_df=2, sublinear_tf=True, max_features=200_000,
                                  dtype=np.float32).fit(rows["train"])
            for s in blocks:
                blocks[s].append(vec.transform(rows[s]))
        elif feature.type == "categorical":
            enc = OneHotEncoder(handle_unknown="ignore", min_frequency=feature.min_count, dtype=np.float32)
            keys = {s: as_keys(frames[s][column]).fillna("<missing>").to_numpy(dtype=object).reshape(-1, 1)
                    for s in blocks}
            enc.fit(keys["train"])
            for s in blocks:
                blocks[s].append(enc.transform(keys[s]))
        elif feature.type == "multihot":
            proc = MultiHotProcessor(feature)
            vec = CountVectorizer(analyzer=_identity, binary=True, dtype=np.float32)
            vec.fit(proc._tokens(frames["train"][column]))
            for s in blocks:
                blocks[s].append(vec.transform(proc._tokens(frames[s][column])))
        else:
            proc = NumericProcessor(feature)
            proc.fit(frames["train"][column])
            for s in blocks:
                blocks[s].append(csr_matrix(proc.transform(frames[s][column])))
    return {s: hstack(b).tocsr().astype(np.float32) for s, b in blocks.items()}


def _proba(model: Any, x: Any, n_classes: int) -> np.ndarray:
    """Class probabilities over all of a task's classes (a class absent from the fitted rows gets 0)."""
    out = np.zeros((x.shape[0], n_classes), dtype=np.float64)
    out[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(x)
    return out


@BASELINES.register("linear", "TF-IDF (+ one-hot, numbers) → logistic regression per task, ridge for regression")
class LinearBaseline(Baseline):
    name, label = "linear", "TF-IDF + LR / ridge"

    def label_for(self, task: Task) -> str:
        return "TF-IDF + ridge" if task.cfg.type == "regression" else "TF-IDF + LR"

    def applies(self, task: Task, data: BaselineData) -> bool:
        return task.cfg.type in ("binary", "multiclass", "multilabel", "regression")

    def fit(self, task: Task, data: BaselineData) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.multiclass import OneVsRestClassifier

        x = data.inputs("linear", linear_inputs)
        target, mask = data.labels(task, "train")
        xt, yt = x["train"][mask], target[mask]
        kind = task.cfg.type
        candidates: list[tuple[dict[str, Any], Callable[[str], np.ndarray]]] = []
        if kind == "regression":
            for alpha in ALPHA_GRID:
                model = Ridge(alpha=alpha).fit(xt, yt)
                candidates.append(({"alpha": alpha},
                                   lambda s, m=model: m.predict(x[s]) * task.std + task.mean))
            return _choose(task, data, candidates)
        model: Any = None
        for c in C_GRID:  # ascending C, each fit warm-started from the last
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                if kind == "multilabel":
                    model = OneVsRestClassifier(LogisticRegression(C=c, max_iter=300)).fit(xt, yt.astype(int))
                    predict = lambda s, m=model: m.predict_proba(x[s])  # noqa: E731
                else:
                    if model is None:
                        model = LogisticRegression(C=c, max_iter=300, warm_start=True)
                    else:
                        model = copy.deepcopy(model).set_params(C=c)
                    model.fit(xt, yt.astype(int))
                    if kind == "binary":
                        predict = lambda s, m=model: _proba(m, x[s], 2)[:, 1]  # noqa: E731
                    else:
                        predict = lambda s, m=model: _proba(m, x[s], task.n_outputs)  # noqa: E731
            candidates.append(({"C": c}, predict))
        return _choose(task, data, candidates)


# ---------------------------------------------------------------- LightGBM on the tabular features
TABULAR = ("categorical", "numeric", "multihot")


def tabular_inputs(data: BaselineData) -> dict[str, Any]:
    """One DataFrame per split: categorical ids (fitted on train; missing → NaN), numbers after their transform
    (missing → NaN, which trees route on), the most frequent multi-hot tokens as 0/1 columns."""
    from ..data.preprocess import CategoricalProcessor, MultiHotProcessor, NumericProcessor

    cfg, frames = data.config, data.frames
    out: dict[str, dict[str, Any]] = {s: {} for s in data.splits()}
    categorical: list[str] = []
    for name, feature in cfg.features.items():
        column = cfg.feature_column(name)
        if feature.type == "categorical":
            proc = CategoricalProcessor(feature)
            proc.fit(frames["train"][column])
            for s in out:
                ids = proc.transform(frames[s][column]).astype(np.float64)
                ids[ids == 0] = np.nan
                out[s][name] = ids
            categorical.append(name)
        elif feature.type == "numeric":
            proc = NumericProcessor(feature)
            for s in out:
                values = proc._values(frames[s][column])
                out[s][name] = np.where(np.isfinite(values), values, np.nan)
        elif feature.type == "multihot":
            proc = MultiHotProcessor(feature)
            rows = {s: proc._tokens(frames[s][column]) for s in out}
            counts = pd.Series([t for row in rows["train"] for t in set(row)]).value_counts()
            for token in counts.index[:MULTIHOT_COLUMNS]:
                for s in out:
                    out[s][f"{name}={token}"] = np.array([token in row for row in rows[s]], dtype=np.float64)
    frames_out = {s: pd.DataFrame(cols, index=frames[s].index) for s, cols in out.items()}
    return {"frames": frames_out, "categorical": categorical}


@BASELINES.register("lightgbm", "LightGBM per task on the tabular features (trees chosen on valid)")
class LightGBMBaseline(Baseline):
    name, label = "lightgbm", "LightGBM"

    def applies(self, task: Task, data: BaselineData) -> bool:
        tabular = any(f.type in TABULAR for f in data.config.features.values())
        if not tabular or task.cfg.type not in ("binary", "multiclass", "multilabel", "regression"):
            return False
        return not (task.cfg.type == "multiclass" and task.n_outputs > MAX_LIGHTGBM_CLASSES)

    def _one(self, kind: str, leaves: int, xt: pd.DataFrame, yt: np.ndarray, xv: pd.DataFrame, yv: np.ndarray,
             categorical: list[str], data: BaselineData, n_classes: int = 2) -> Any:
        import lightgbm as lgb

        params = dict(n_estimators=2000, learning_rate=0.05, num_leaves=leaves, min_child_samples=20,
                      colsample_bytree=0.8, reg_lambda=1.0, random_state=data.seed, n_jobs=data.threads,
                      verbose=-1)
        if kind == "regression":
            model = lgb.LGBMRegressor(**params)
        else:
            model = lgb.LGBMClassifier(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model.fit(xt, yt, eval_X=xv, eval_y=yv, categorical_feature=categorical or "auto",
                      callbacks=[lgb.early_stopping(100, verbose=False)])
        return model

    def fit(self, task: Task, data: BaselineData) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        spec = data.inputs("lightgbm", tabular_inputs)
        x, categorical = spec["frames"], spec["categorical"]
        t_train, m_train = data.labels(task, "train")
        t_valid, m_valid = data.labels(task, "valid")
        xt, xv = x["train"][m_train], x["valid"][m_valid]
        kind = task.cfg.type
        candidates: list[tuple[dict[str, Any], Callable[[str], np.ndarray]]] = []
        for leaves in LEAVES_GRID:
            if kind == "multilabel":
                models = []
                for j in range(task.n_outputs):
                    yt, yv = t_train[m_train][:, j].astype(int), t_valid[m_valid][:, j].astype(int)
                    models.append(None if len(np.unique(yt)) < 2 else
                                  self._one("binary", leaves, xt, yt, xv, yv, categorical, data))
                    if models[-1] is None:
                        models[-1] = float(yt.mean())

                def predict(s: str, ms: list = models) -> np.ndarray:
                    return np.stack([np.full(len(x[s]), m) if isinstance(m, float) else m.predict_proba(x[s])[:, 1]
                                     for m in ms], axis=1)
            else:
                yt, yv = t_train[m_train], t_valid[m_valid]
                if kind != "regression":
                    yt, yv = yt.astype(int), yv.astype(int)
                model = self._one(kind, leaves, xt, yt, xv, yv, categorical, data)
                trees = int(getattr(model, "best_iteration_", 0) or 0)
                if kind == "regression":
                    predict = lambda s, m=model: m.predict(x[s]) * task.std + task.mean  # noqa: E731
                elif kind == "binary":
                    predict = lambda s, m=model: _proba(m, x[s], 2)[:, 1]  # noqa: E731
                else:
                    predict = lambda s, m=model: _proba(m, x[s], task.n_outputs)  # noqa: E731
            setting: dict[str, Any] = {"num_leaves": leaves}
            if kind != "multilabel":
                setting["trees"] = trees
            candidates.append((setting, predict))
        return _choose(task, data, candidates)


# ---------------------------------------------------------------- feature CRF for tagging tasks
@BASELINES.register("crf", "linear-chain CRF over token-window features per tagging task (sklearn-crfsuite)")
class CRFBaseline(Baseline):
    name, label = "crf", "CRF (token windows)"

    def applies(self, task: Task, data: BaselineData) -> bool:
        return task.cfg.type == "tagging"

    def fit(self, task: Task, data: BaselineData) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        import sklearn_crfsuite

        from ..features.windows import crf_features

        feature = data.config.features[task.text_feature]
        column = data.config.feature_column(task.text_feature)
        tokens = {s: token_lists(feature, data.frames[s][column]) for s in data.splits()}
        feats = {s: [crf_features(t) for t in rows] for s, rows in tokens.items()}
        target, mask = data.labels(task, "train")
        train_idx = np.flatnonzero(mask)
        tags = [[task.tags[j] for j in target[i][target[i] >= 0]] for i in train_idx]
        candidates: list[tuple[dict[str, Any], Callable[[str], np.ndarray]]] = []
        for c1, c2 in CRF_GRID:
            model = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=c1, c2=c2, max_iterations=100,
                                         all_possible_transitions=True)
            model.fit([feats["train"][i] for i in train_idx], tags)

            def predict(s: str, m: Any = model) -> np.ndarray:
                out = np.full((len(feats[s]), task.width), -1, dtype=np.int64)
                for i, seq in enumerate(m.predict(feats[s])):
                    n = min(len(seq), task.width)
                    out[i, :n] = [task.tag_index.get(tag, 0) for tag in seq[:n]]
                return out

            candidates.append(({"c1": c1, "c2": c2}, predict))
        return _choose(task, data, candidates)


# ---------------------------------------------------------------- running them
def check_families(names: list[str] | None) -> list[str]:
    chosen = names or BASELINES.names()
    for n in chosen:
        BASELINES.get(n)
    if not chosen:
        raise ConfigError("--baselines: name at least one baseline family")
    return chosen


def run_baselines(config: ExperimentConfig, frames: dict[str, pd.DataFrame], tasks: dict[str, Task],
                  families: list[str] | None = None, threads: int | None = None) -> dict[str, Any]:
    """Every baseline family that applies, per task: its chosen setting, valid and test metrics and fit time;
    and per task the best family on the validation split."""
    from threadpoolctl import threadpool_limits

    threads = threads or config.train.threads or 1
    data = BaselineData(config, frames, tasks, threads=threads, seed=config.seed)
    results: dict[str, dict[str, Any]] = {}
    preds: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    with threadpool_limits(threads):
        for name, task in tasks.items():
            results[name] = {}
            for family in check_families(families):
                baseline = BASELINES.get(family)()
                if not baseline.applies(task, data):
                    continue
                start = time.perf_counter()
                setting, task_preds = baseline.fit(task, data)
                entry = {"label": baseline.label_for(task), "setting": setting, "fit_seconds": round(time.perf_counter() - start, 2)}
                for split in ("valid", "test"):
                    if split in task_preds:
                        entry[split] = data.score(task, split, task_preds[split])
                results[name][family] = entry
                preds[(name, family)] = task_preds
                log.info("baseline %s / %s (%s): valid %s %.4f (%.1f s)", name, family, setting, task.primary,
                         entry["valid"][task.primary], entry["fit_seconds"])
        for name, task in tasks.items():  # funnels: the baseline's p(parent) · p(child | parent) as CTCVR
            parent = getattr(task.cfg, "after", None)
            if parent is not None:
                _funnel_baselines(task, tasks[parent], data, results[name], preds)
    best = {}
    for name, task in tasks.items():
        sign = 1.0 if task.higher_is_better(task.primary) else -1.0
        scored = [(sign * np.nan_to_num(r["valid"][task.primary], nan=-np.inf), f) for f, r in results[name].items()]
        if scored:
            best[name] = max(scored)[1]
    return {"tasks": results, "best": best, "primary": {n: t.primary for n, t in tasks.items()},
            "rows": {s: int(len(f)) for s, f in frames.items()}, "threads": threads}


def _funnel_baselines(task: Task, parent: Task, data: BaselineData, entries: dict[str, Any],
                      preds: dict[tuple[str, str], dict[str, np.ndarray]]) -> None:
    """For a funnel task, each family's CTCVR AUC: its p(parent) times a second model of p(task | parent = 1)
    fitted on the parent's positive rows, against the rows where both happened (as the models' `ctcvr_auc`)."""
    from ..training.evaluate import ctcvr_auc

    given = data.given(parent)
    for family, entry in entries.items():
        if (parent.name, family) not in preds:
            continue
        baseline = BASELINES.get(family)()
        setting, conditional = baseline.fit(task, given)
        entry["setting_given_parent"] = setting
        for split in ("valid", "test"):
            if split not in conditional or split not in entry:
                continue
            target, mask = data.labels(task, split)
            p_target, p_mask = data.labels(parent, split)
            enc = _Labels({task.name: mask, parent.name: p_mask}, {task.name: target, parent.name: p_target})
            score = preds[(parent.name, family)][split] * conditional[split]
            entry[split]["ctcvr_auc"] = ctcvr_auc(enc, task.name, parent.name, score)


@dataclass
class _Labels:
    masks: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]


def baseline_table(record: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per task and family: the primary metric on valid and test, the chosen setting, the best family marked."""
    header = ["task", "metric", "baseline", "setting", "valid", "test", "fit s"]
    body = []
    for task, families in record["tasks"].items():
        metric = record["primary"][task]
        for family, r in families.items():
            best = " (best on valid)" if record["best"].get(task) == family and len(families) > 1 else ""
            setting = ", ".join(f"{k}={v}" for k, v in r["setting"].items())
            body.append([task, metric, f"{r['label']}{best}", setting, _fmt(r["valid"].get(metric)),
                         _fmt(r.get("test", {}).get(metric)), f"{r['fit_seconds']:.1f}"])
    return header, body


def _fmt(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def markdown(record: dict[str, Any]) -> str:
    header, body = baseline_table(record)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def save_baselines(config: ExperimentConfig, frames: dict[str, pd.DataFrame], tasks: dict[str, Task],
                   families: list[str] | None = None, output_dir: str | None = None) -> tuple[Any, str]:
    """Fit the baselines and write `<output_dir>/<name>-baselines[-k]/` (baselines.json, baselines.md)."""
    import json
    from pathlib import Path

    from ..run import _clean, unique_dir

    record = run_baselines(config, frames, tasks, families)
    folder = unique_dir(Path(output_dir or config.output_dir) / f"{config.name}-baselines")
    folder.mkdir(parents=True)
    (folder / "baselines.json").write_text(json.dumps(_clean(record), indent=2), encoding="utf-8")
    text = markdown(record)
    rows = record["rows"]
    (folder / "baselines.md").write_text(
        f"# {config.name}: per-task baselines\n\nrows train/valid/test: {rows.get('train')}/{rows.get('valid')}/"
        f"{rows.get('test')}; settings chosen per task on the validation split.\n\n{text}\n", encoding="utf-8")
    return folder, text
