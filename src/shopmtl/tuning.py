"""Hyper-parameter search on the validation split (Optuna): each trial trains the experiment with sampled
settings on the same rows and split, reports its validation figure every epoch (poor trials are pruned against
the median of earlier trials at the same epoch), and the best trial's config is written out as YAML. The test
split is never read.

The search space is a list of dotted config keys with their choices or ranges (`default_space` derives one from
the experiment; `--space FILE` gives another in the same form):

    model.architecture: [shared_bottom, mmoe]         # a list: one of these
    model.dropout: {low: 0.0, high: 0.5}              # a float range
    train.lr: {low: 3.0e-4, high: 1.0e-2, log: true}  # log scale
    model.bottom_layers: [[128], [256], [256, 128]]   # lists of lists are choices too

The objective is an early-stopping monitor (`valid.loss`, `valid.mean_auc`, `valid.<task>.<metric>`), or
`baselines`: the mean over tasks of each task's primary validation metric's relative change against the best
practitioner's baseline for that task (fitted once, on the same split) — positive where the model beats them."""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import ExperimentConfig, apply_overrides, config_from_dict, read_yaml
from .errors import ConfigError, ShopMTLError

log = logging.getLogger("shopmtl")

ARCHITECTURE_CHOICES = ["shared_bottom", "mmoe", "ple"]
BALANCER_CHOICES = ["equal", "uncertainty", "dwa", "famo"]


def default_space(config: ExperimentConfig) -> dict[str, Any]:
    """Architecture, balancer, widths, dropout, learning rate, weight decay, epochs, and the wide term (on/off,
    its learning rate and weight decay, fitted first or together with the deep path) where the experiment has
    sparse features."""
    train = config.train
    bottom = config.model.bottom_layers or [128]
    top = max(bottom)
    space: dict[str, Any] = {
        "model.architecture": list(dict.fromkeys([config.model.architecture, *ARCHITECTURE_CHOICES])),
        "balance.method": list(dict.fromkeys([config.balance.method, *BALANCER_CHOICES])),
        "model.bottom_layers": [list(bottom), [top // 2], [top], [top * 2], [top * 2, top]],
        "model.tower_layers": [list(config.model.tower_layers), [32], [64], [128]],
        "model.dropout": {"low": 0.0, "high": 0.5},
        "train.lr": {"low": train.lr / 4, "high": train.lr * 4, "log": True},
        "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
        "train.epochs": {"low": max(1, train.epochs // 2), "high": train.epochs * 2, "int": True},
    }
    if any(f.type == "sparse" for f in config.features.values()):
        wide = config.model.wide
        space["model.wide"] = ["on", "off"] if wide is not None else ["off", "on"]
        lr = wide.lr if wide and wide.lr else train.lr * 5
        space["model.wide.lr"] = {"low": lr / 3, "high": lr * 10, "log": True}
        space["model.wide.weight_decay"] = [0.0, 1e-3, 1e-2, 1e-1]
        # wide first (by Adam or, where no funnel ties tasks, by L-BFGS), then deep; or both together from the start
        choices: list[Any] = [None, {}]
        if not any(getattr(t, "after", None) for t in config.tasks.values()):
            choices.append({"solver": "lbfgs"})
        if wide is not None and wide.pretrain is not None:
            choices = [wide.pretrain.model_dump(), *choices]
        space["model.wide.pretrain"] = choices
        for name, task in config.tasks.items():  # a noisy regression wants more decay than the classifiers
            if task.type == "regression":
                space[f"model.wide.tasks.{name}.weight_decay"] = [0.0, 0.1, 1.0, 3.0]
                space[f"model.wide.tasks.{name}.lr"] = {"low": lr / 30, "high": lr * 3, "log": True}
    es = config.train.early_stopping
    if es is not None and len(config.tasks) > 1:
        space["train.early_stopping.monitor"] = list(dict.fromkeys([es.monitor, "valid.primary"]))
    return space


def _choice_key(value: Any) -> Any:
    """Optuna choices are scalars: a list becomes its YAML text."""
    return yaml.safe_dump(value, default_flow_style=True).strip() if isinstance(value, list | dict) else value


def check_space(space: dict[str, Any]) -> dict[str, Any]:
    for key, spec in space.items():
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"search space `{key}`: the list of choices is empty")
        elif isinstance(spec, dict):
            unknown = set(spec) - {"low", "high", "log", "int"}
            if unknown or not {"low", "high"} <= set(spec):
                raise ConfigError(f"search space `{key}`: a range is {{low: …, high: …, log: true|false, int: "
                                  f"true|false}}; got {spec}")
            if not spec["low"] < spec["high"]:
                raise ConfigError(f"search space `{key}`: low ({spec['low']}) must be below high ({spec['high']})")
        else:
            raise ConfigError(f"search space `{key}`: give a list of choices or a {{low, high}} range, not {spec!r}")
    return space


def sample(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """The trial's value for every key of the space (lists back as lists)."""
    values: dict[str, Any] = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            keys = [_choice_key(v) for v in spec]
            picked = trial.suggest_categorical(key, keys)
            values[key] = spec[keys.index(picked)]
        elif spec.get("int"):
            values[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]),
                                              log=bool(spec.get("log")))
    return values


def trial_raw(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The base config (as a dict) with a trial's values; `model.wide: on/off` keeps or removes the wide term
    (its lr and weight decay apply only when it is on); architecture and balancer options that the chosen ones
    do not take are dropped."""
    raw = copy.deepcopy(base)
    values = dict(values)
    wide = values.pop("model.wide", None)
    wide_keys = {k: values.pop(k) for k in list(values) if k.startswith("model.wide.")}
    if wide == "off":  # and the sparse features only the wide term read go with it
        raw.setdefault("model", {}).pop("wide", None)
        raw["features"] = {n: f for n, f in raw.get("features", {}).items()
                           if not (isinstance(f, dict) and f.get("type") == "sparse" and not f.get("deep"))}
    elif wide == "on" or (wide is None and raw.get("model", {}).get("wide") is not None):
        raw.setdefault("model", {})["wide"] = dict(raw["model"].get("wide") or {})
        raw = apply_overrides(raw, [f"{k}={json.dumps(v)}" for k, v in wide_keys.items()])
    raw = apply_overrides(raw, [f"{k}={json.dumps(v)}" for k, v in values.items()])
    _drop_foreign_options(raw, base)
    return raw


def _drop_foreign_options(raw: dict[str, Any], base: dict[str, Any]) -> None:
    from .architectures import ARCHITECTURES
    from .balancing import BALANCERS
    from .config import BalanceConfig, ModelConfig

    for section, key, registry, fields in (("model", "architecture", ARCHITECTURES, ModelConfig.model_fields),
                                           ("balance", "method", BALANCERS, BalanceConfig.model_fields)):
        chosen = raw.get(section, {}).get(key)
        if chosen is None or chosen == base.get(section, {}).get(key):
            continue
        accepted = set(registry.get(chosen).Options.model_fields)
        for k in [k for k in raw[section] if k not in fields and k not in accepted]:
            raw[section].pop(k)


@dataclass
class Objective:
    """What a trial is scored by on the validation split (higher is better after `sign`)."""

    text: str
    monitor: Any = None  # a Monitor, or a list of them (their mean: `valid.mean_auc+valid.mean_gauc`)
    reference: dict[str, float] = field(default_factory=dict)  # task → best baseline's primary valid metric
    higher: dict[str, bool] = field(default_factory=dict)
    primary: dict[str, str] = field(default_factory=dict)

    @property
    def maximise(self) -> bool:
        if self.monitor is None:
            return True
        return self.monitor[0].higher_is_better if isinstance(self.monitor, list) else self.monitor.higher_is_better

    def value(self, metrics: dict[str, dict[str, float]]) -> float:
        if self.monitor is None:
            from .analysis.compare import delta_m

            values = {t: metrics[t][m] for t, m in self.primary.items() if t in metrics}
            return delta_m(values, self.reference, self.higher)
        losses = {t: m["loss"] for t, m in metrics.items() if "loss" in m}
        if isinstance(self.monitor, list):
            values = [m.value(metrics, losses) for m in self.monitor]
            return sum(values) / len(values)
        return self.monitor.value(metrics, losses)

    def gains(self, metrics: dict[str, dict[str, float]]) -> dict[str, float]:
        from .analysis.compare import relative_gain

        return {t: relative_gain(metrics[t][m], self.reference[t], self.higher[t])
                for t, m in self.primary.items() if t in metrics and t in self.reference}


def make_objective(text: str, config: ExperimentConfig, data: Any, base_dir: Path | None,
                   baselines: str | Path | None = None) -> Objective:
    """`baselines`: a `shopmtl baseline` folder (or its baselines.json) fitted on this split, reused instead of
    fitting the baselines again."""
    from .experiment import Experiment
    from .training.monitor import Monitor

    frames, tasks = Experiment(config, base_dir).prepare(data)
    if text != "baselines":
        monitors = [Monitor.parse(part.strip(), "auto", tasks) for part in text.split("+")]
        if any(m.metric == "primary" and m.task is None for m in monitors):
            raise ConfigError("--objective valid.primary is relative to each trial's own first epoch, so trials "
                              "cannot be ranked by it; use `baselines` (relative to fixed baselines) or a metric")
        if len({m.higher_is_better for m in monitors}) > 1:
            raise ConfigError(f"--objective {text}: its parts go in opposite directions (higher vs lower is "
                              f"better); combine figures of one direction, e.g. valid.mean_auc+valid.mean_gauc")
        return Objective(text, monitors if len(monitors) > 1 else monitors[0])
    if baselines is not None:
        record = _read_baselines(Path(baselines), frames, tasks)
    else:
        from .analysis.baselines import run_baselines

        record = run_baselines(config, frames, tasks)
    reference, higher, primary = {}, {}, {}
    for name, task in tasks.items():
        best = record["best"].get(name)
        if best is None:
            continue
        reference[name] = record["tasks"][name][best]["valid"][task.primary]
        higher[name] = task.higher_is_better(task.primary)
        primary[name] = task.primary
    log.info("tune: baselines on the validation split: %s",
             ", ".join(f"{t} {primary[t]} {v:.4f}" for t, v in reference.items()))
    return Objective(text, None, reference, higher, primary)


def _read_baselines(path: Path, frames: dict[str, Any], tasks: dict[str, Any]) -> dict[str, Any]:
    file = path / "baselines.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"--baselines-from: {path} is neither a `shopmtl baseline` folder nor its baselines.json")
    record = json.loads(file.read_text(encoding="utf-8"))
    rows = {s: int(len(f)) for s, f in frames.items()}
    if record.get("rows") != rows or set(record.get("tasks", {})) != set(tasks):
        raise ConfigError(f"--baselines-from: {file} was fitted on other rows or tasks (rows {record.get('rows')}, "
                          f"here {rows}); fit them again with `shopmtl baseline` on this config")
    return record


def tune(config_path: str | Path, overrides: list[str], trials: int, objective: str | None = None,
         space: dict[str, Any] | None = None, output_dir: str | None = None, data_dir: str | None = None,
         timeout: float | None = None, seed: int = 0, baselines: str | Path | None = None,
         wide_cache: str | Path | None = None) -> Path:
    """Run the search; write `<output_dir>/<name>-tune[-k]/` with trials.csv, tune.md, tune.json, best.yaml."""
    import optuna
    import pandas as pd

    from .data.readers import READERS
    from .experiment import Experiment
    from .run import _clean, unique_dir

    if trials < 1:
        raise ConfigError(f"--trials must be 1 or more, got {trials}")
    raw = apply_overrides(read_yaml(config_path), overrides)
    if data_dir:
        fmt = raw.get("data", {}).get("source", {}).get("format")
        raw = apply_overrides(raw, [f"data.source.path={Path(data_dir) / READERS.get(fmt).folder}"])
    base_cfg = config_from_dict(raw, str(config_path))
    base_dir = Path(config_path).resolve().parent
    es = base_cfg.train.early_stopping
    objective_text = objective or (es.monitor if es else "valid.loss")
    space = check_space(space or default_space(base_cfg))
    base_raw = raw  # the user's own file with its overrides: the best config keeps its shape and comments' keys
    data = Experiment(base_cfg, base_dir).read_data()
    goal = make_objective(objective_text, base_cfg, data, base_dir, baselines)
    folder = unique_dir(Path(output_dir or base_cfg.output_dir) / f"{base_cfg.name}-tune")
    folder.mkdir(parents=True)
    records: list[dict[str, Any]] = []

    def run_trial(trial: optuna.Trial) -> float:
        values = sample(trial, space)
        cfg_raw = trial_raw(base_raw, values)
        cfg_raw.setdefault("train", {})["progress"] = False
        try:
            cfg = config_from_dict(cfg_raw, f"trial {trial.number}")
        except ShopMTLError as err:
            records.append({"trial": trial.number, **{k: _choice_key(v) for k, v in values.items()},
                            "state": f"failed: {err}"})
            log.warning("tune: trial %d failed: %s", trial.number, err)
            raise
        start = time.perf_counter()
        record: dict[str, Any] = {"trial": trial.number, **{k: _choice_key(v) for k, v in values.items()}}

        def on_epoch(epoch: int, metrics: dict[str, dict[str, float]]) -> None:
            value = goal.value(metrics)
            if math.isfinite(value):
                trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        try:
            # trials that fit the same wide term by L-BFGS (same features, same C grid) fit it once
            cache = Path(wide_cache) if wide_cache else folder / "wide_fits"
            run = Experiment(cfg, base_dir, wide_cache=cache).fit(save=False, data=data, on_epoch=on_epoch)
        except optuna.TrialPruned:
            records.append({**record, "state": "pruned", "seconds": round(time.perf_counter() - start, 1)})
            raise
        except ShopMTLError as err:  # these settings cannot train on this data: the trial fails, the search goes on
            log.warning("tune: trial %d failed: %s", trial.number, err)
            records.append({**record, "state": f"failed: {err}", "seconds": round(time.perf_counter() - start, 1)})
            raise
        value = goal.value(run.metrics["valid"])
        record.update(state="complete", value=value, seconds=round(time.perf_counter() - start, 1),
                      epochs=run.metrics["epochs_run"])
        if goal.monitor is None:
            record.update({f"vs_baseline.{t}": g for t, g in goal.gains(run.metrics["valid"]).items()})
        records.append(record)
        pd.DataFrame(records).to_csv(folder / "trials.csv", index=False)  # so far: readable while it runs
        log.info("tune: trial %d → %s %.5f (%.0f s)", trial.number, objective_text, value, record["seconds"])
        trial.set_user_attr("raw", cfg_raw)
        return value if math.isfinite(value) else (-math.inf if goal.maximise else math.inf)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if goal.maximise else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2))
    study.optimize(run_trial, n_trials=trials, timeout=timeout, catch=(ShopMTLError,))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError("tune: no trial completed (every one was pruned or failed); raise --trials")
    best = study.best_trial
    table = pd.DataFrame(records).drop_duplicates("trial", keep="last").sort_values("trial")
    table.to_csv(folder / "trials.csv", index=False)
    best_raw = best.user_attrs["raw"]
    best_raw["train"].pop("progress", None)
    header = (f"# chosen by `shopmtl tune` on the validation split ({len(complete)} complete of {len(study.trials)} "
              f"trials, objective {objective_text} = {best.value:.5f} at trial {best.number}); the test split was "
              f"not read\n")
    (folder / "best.yaml").write_text(header + yaml.safe_dump(_clean(best_raw), sort_keys=False, allow_unicode=True),
                                      encoding="utf-8")
    summary = {"objective": objective_text, "maximise": goal.maximise, "best_trial": best.number,
               "best_value": best.value, "best_params": {k: _choice_key(v) for k, v in best.params.items()},
               "space": space, "reference": goal.reference, "trials": records}
    (folder / "tune.json").write_text(json.dumps(_clean(summary), indent=2, default=str), encoding="utf-8")
    (folder / "tune.md").write_text(markdown(table, objective_text, best.number), encoding="utf-8")
    return folder


def markdown(table: Any, objective: str, best: int) -> str:
    cols = [c for c in table.columns if c != "trial"]
    lines = [f"# shopmtl tune: objective {objective} (validation split); best trial {best}", "",
             "| trial | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 1)]
    for _, row in table.iterrows():
        cells = [f"{v:.5g}" if isinstance(v, float) else str(v) for v in (row[c] for c in cols)]
        mark = " **(best)**" if row["trial"] == best else ""
        lines.append(f"| {int(row['trial'])}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
