"""An experiment: a validated config → the source read and checked → splits → preprocessing fitted on the
training split → one model trained → metrics per task and split → a Run (saved as a run folder)."""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .analysis import explain
from .analysis.affinity import format_groups, suggest_groups
from .analysis.experts import expert_use, format_expert_use
from .balancing import BALANCERS
from .config import ExperimentConfig, load_config
from .data.batching import Encoded, encode
from .data.preprocess import Preprocessor
from .data.readers import read_table, resolve_path
from .data.splits import SPLITS, assign_splits
from .errors import DataError, did_you_mean
from .model import MultiTaskModel
from .run import Run, build_tasks
from .tasks import Task
from .training.device import pick_device, seed_everything, use_amp
from .training.evaluate import evaluate
from .training.loop import fit
from .training.monitor import Monitor
from .training.tracking import check_mlflow, log_to_mlflow
from .training.wide import pretrain

log = logging.getLogger("shopmtl")


def required_columns(config: ExperimentConfig) -> dict[str, str]:
    """Config field → the source column it needs."""
    need = {f"features.{n}" + (f".{c}" if len(config.feature_columns(n)) > 1 else ""): c
            for n in config.features for c in config.feature_columns(n)}
    need.update({f"tasks.{n}": config.task_column(n) for n in config.tasks})
    for n, t in config.tasks.items():
        if getattr(t, "group", None):
            need[f"tasks.{n}.group"] = t.group
    if config.data.split.column:
        need["data.split.column"] = config.data.split.column
    return need


def check_columns(config: ExperimentConfig, df: pd.DataFrame, where: str) -> None:
    for field, column in required_columns(config).items():
        if column not in df.columns:
            raise DataError(f"{field}: column `{column}` is not in {where};{did_you_mean(column, map(str, df.columns))}"
                            f" (set `column:` to map a feature or task to a differently named column)")


def check_funnels(config: ExperimentConfig, train: Encoded) -> dict[str, dict[str, Any]]:
    """For each funnel task (`after: parent`), the share of its training positives whose parent label is
    negative. ESMM models p(task) = p(parent)·p(task | parent), which such rows contradict: above the task's
    `after_tolerance` the funnel is refused, below it a warning names the share."""
    report: dict[str, dict[str, Any]] = {}
    for name, t in config.tasks.items():
        parent = getattr(t, "after", None)
        if parent is None:
            continue
        both = train.masks[name] & train.masks[parent]
        child = both & (train.targets[name] > 0.5)
        outside = int((child & (train.targets[parent] < 0.5)).sum())
        positives = int(child.sum())
        share = outside / positives if positives else 0.0
        report[name] = {"after": parent, "positives": positives, "outside_parent": outside, "share": share}
        if share > t.after_tolerance:
            raise DataError(f"tasks.{name}.after: {share:.1%} of the training rows with {name}=1 have {parent}=0 "
                            f"({outside} of {positives}), above after_tolerance={t.after_tolerance}; a funnel "
                            f"p({name}) = p({parent})·p({name} | {parent}) contradicts this data. Remove `after:`, "
                            f"choose a parent that precedes {name}, or raise tasks.{name}.after_tolerance")
        if outside:
            log.warning("tasks.%s.after: %.1f%% of training rows with %s=1 have %s=0 (%d of %d); the funnel "
                        "cannot fit them", name, 100 * share, name, parent, outside, positives)
    return report


class Experiment:
    def __init__(self, config: ExperimentConfig, base_dir: Path | None = None, wide_cache: Path | None = None):
        """`wide_cache`: a folder where deterministic wide fits (`model.wide.pretrain` by L-BFGS) are kept and
        reused by later runs of the same inputs (a comparison's seeds and variants)."""
        self.config = config
        self.base_dir = base_dir
        self.wide_cache = wide_cache

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> Experiment:
        return cls(load_config(path, overrides), Path(path).resolve().parent)

    def read_data(self) -> pd.DataFrame:
        src = self.config.data.source
        path = resolve_path(src.format, src.path, self.base_dir)
        df = read_table(src.format, path, src.options, src.limit)
        check_columns(self.config, df, f"the `{src.format}` data at {path}")
        return df

    def prepare(self, data: pd.DataFrame | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, Task]]:
        """The source (or `data`) checked and split, and the tasks fitted on the training split: what every model
        of this experiment, and every baseline, trains and is scored on."""
        if data is None:
            df = self.read_data()
        else:
            df = data
            check_columns(self.config, df, "the data")
        split = assign_splits(df, self.config.data.split)
        frames = {s: df[split == s] for s in SPLITS}
        tasks = build_tasks(self.config)
        for task in tasks.values():
            task.fit(task.label_values(frames["train"]))
        return frames, tasks

    def fit(self, save: bool = True, data: pd.DataFrame | None = None,
            on_epoch: Callable[[int, dict[str, dict[str, float]]], None] | None = None) -> Run:
        cfg = self.config
        check_mlflow(cfg)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        rng = seed_everything(cfg.seed)
        device = pick_device(cfg.train.device)
        frames, tasks = self.prepare(data)
        train_df = frames["train"]
        preprocessor = Preprocessor(cfg).fit(train_df)
        encoded: dict[str, Encoded] = {s: encode(f, preprocessor, tasks, split=s) for s, f in frames.items()
                                       if len(f)}
        for name in tasks:
            if not encoded["train"].masks[name].any():
                raise DataError(f"tasks.{name}: no training row has a label in column `{tasks[name].column}`")

        funnels = check_funnels(cfg, encoded["train"])

        es = cfg.train.early_stopping
        Monitor.parse(es.monitor if es else "valid.loss", es.mode if es else "auto", tasks)  # fail before training
        model = MultiTaskModel(cfg, preprocessor, tasks).to(device)
        notes = model.sharing.check_data(encoded["train"].masks)
        for note in notes:
            log.warning(note)
        pretrained: dict[str, Any] | None = None
        wide = cfg.model.wide
        if wide is not None and wide.pretrain is not None:  # (the config refuses it without the deep path)
            log.info("fitting the wide term alone first (model.wide.pretrain)")
            pretrained = pretrain(model, cfg, preprocessor, tasks, encoded["train"], encoded["valid"], rng, device,
                                  self.wide_cache)
        balancer = BALANCERS.get(cfg.balance.method)(list(tasks), cfg, model)
        result = fit(model, tasks, balancer, encoded["train"], encoded["valid"], cfg.train, rng, device,
                     use_amp(cfg.train.amp, device), cfg.model, on_epoch, start_is_candidate=pretrained is not None)

        metrics: dict[str, Any] = {}
        for s in ("valid", "test"):
            if s in encoded:
                metrics[s], _ = evaluate(model, tasks, encoded[s], 4096, device)
        metrics["rows"] = {s: int(len(f)) for s, f in frames.items()}
        metrics["best_epoch"] = result.best_epoch
        metrics["epochs_run"] = len(result.history)
        if result.affinity:
            metrics["affinity"] = result.affinity
            metrics["task_groups"] = suggest_groups(result.affinity)
            log.info(format_groups(metrics["task_groups"]))
        if result.gradient_cosine:
            metrics["gradient_cosine"] = result.gradient_cosine
        if pretrained is not None:
            metrics["wide_pretrain"] = {**pretrained, "valid": result.start, "wide_only": result.kept_start}
        # a wide fit read from the cache counts at what it cost when it ran: the seconds of one training alone
        wide_seconds = pretrained.get("fit_seconds_total", pretrained["seconds"]) if pretrained else 0.0
        metrics["train_seconds"] = round(result.seconds + wide_seconds, 2)
        metrics["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        metrics["parameters"] = int(sum(p.numel() for p in model.parameters()))
        metrics["unseen_labels_masked"] = {t: k.unseen for t, k in tasks.items() if k.unseen}
        if funnels:
            metrics["funnels"] = funnels
        if notes:
            metrics["notes"] = notes
        use = expert_use(model, tasks, encoded["valid"], 4096, device)
        if use is not None:
            metrics["expert_use"] = use
            log.info("expert use on the validation split:\n%s", format_expert_use(use))
        explanations = explain.summarise(model, tasks, preprocessor, encoded["valid"], cfg.report.explain_rows,
                                         cfg.report.explain_steps, cfg.seed)
        if explanations:
            metrics["explanations"] = explanations
        run = Run(cfg, preprocessor, tasks, model, metrics, result.history)
        if save:
            run.save()
            log_to_mlflow(run)
        return run


def metrics_table(metrics: dict[str, dict[str, float]], tasks: dict[str, Any] | None = None) -> str:
    """A plain-text table: one line per task and metric."""
    lines = [f"{'task':<22}{'metric':<16}{'value':>10}"]
    for task, values in metrics.items():
        for k, v in values.items():
            if k == "n":
                continue
            lines.append(f"{task:<22}{k:<16}{v:>10.4f}" if isinstance(v, float) and not np.isnan(v)
                         else f"{task:<22}{k:<16}{'—':>10}")
    return "\n".join(lines)

