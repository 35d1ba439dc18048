"""Architectures, the training loop, early stopping and reproducibility, on small synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shopmtl import Experiment
from shopmtl.config import load_config
from shopmtl.data.batching import batches, encode
from shopmtl.data.preprocess import Preprocessor
from shopmtl.errors import ConfigError
from shopmtl.model import MultiTaskModel
from shopmtl.run import build_tasks
from shopmtl.training.monitor import Monitor

from .conftest import synthetic_frame


def built(config_path, architecture):
    cfg = load_config(config_path, [f"model.architecture={architecture}"])
    df = synthetic_frame(200)
    pre = Preprocessor(cfg).fit(df)
    tasks = build_tasks(cfg)
    for t in tasks.values():
        t.fit(df[t.column])
    return cfg, tasks, MultiTaskModel(cfg, pre, tasks), encode(df, pre, tasks)


@pytest.mark.parametrize("architecture", ["single", "shared_bottom"])
def test_every_task_gets_an_output_of_its_own_width(synthetic_yaml, architecture):
    cfg, tasks, model, enc = built(synthetic_yaml, architecture)
    batch = next(batches(enc, 32))
    out = model(batch["features"])
    assert out["liked"].shape == (32, 1)
    assert out["kind"].shape == (32, 3)
    assert out["score"].shape == (32, 1)


def test_single_task_columns_share_nothing(synthetic_yaml):
    _, tasks, model, enc = built(synthetic_yaml, "single")
    batch = next(batches(enc, 32))
    out = model(batch["features"])
    tasks["liked"].loss(out["liked"], batch["targets"]["liked"], batch["masks"]["liked"]).backward()
    touched = {n.split(".")[1] for n, p in model.sharing.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert touched == {"liked"}
    assert model.shared_parameters() == []


def test_shared_bottom_shares_inputs_and_bottom(synthetic_yaml):
    _, tasks, model, enc = built(synthetic_yaml, "shared_bottom")
    shared = {id(p) for p in model.shared_parameters()}
    batch = next(batches(enc, 32))
    for name in tasks:
        model.zero_grad()
        out = model(batch["features"])
        tasks[name].loss(out[name], batch["targets"][name], batch["masks"][name]).backward()
        reached = {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        assert shared and shared <= reached  # every task's loss reaches every shared parameter
    assert any(k.startswith("sharing.towers.kind.") for k in model.task_keys("kind"))


def test_training_learns_the_synthetic_signal(synthetic_yaml):
    run = Experiment.from_yaml(synthetic_yaml, ["train.epochs=15", "seed=1"]).fit(save=False)
    test = run.metrics["test"]
    assert test["liked"]["auc"] > 0.8
    assert test["kind"]["accuracy"] > 0.6
    assert test["score"]["r2"] > 0.5
    assert len(run.history) >= 3
    assert run.history[-1]["train.score.loss"] < run.history[0]["train.score.loss"]


def test_same_seed_gives_identical_results(synthetic_yaml):
    a = Experiment.from_yaml(synthetic_yaml, ["train.epochs=2"]).fit(save=False)
    b = Experiment.from_yaml(synthetic_yaml, ["train.epochs=2"]).fit(save=False)
    assert a.metrics["test"] == b.metrics["test"]
    c = Experiment.from_yaml(synthetic_yaml, ["train.epochs=2", "seed=7"]).fit(save=False)
    assert c.metrics["test"] != a.metrics["test"]


def test_early_stopping_restores_the_best_epoch(synthetic_yaml):
    # a huge learning rate makes validation loss worse after the first epochs; patience 1 stops early
    run = Experiment.from_yaml(synthetic_yaml, ["train.epochs=30", "train.lr=0.3",
                                                "train.early_stopping={patience: 1, monitor: valid.loss}"]).fit(save=False)
    losses = [h["valid.loss"] for h in run.history]
    best = run.metrics["best_epoch"]["*"]
    assert len(run.history) < 30
    assert losses[best - 1] == min(losses)
    assert run.metrics["valid"]["liked"]["loss"] + run.metrics["valid"]["kind"]["loss"] + \
        run.metrics["valid"]["score"]["loss"] == pytest.approx(min(losses), rel=1e-4)


def test_single_keeps_each_tasks_own_best_epoch(synthetic_yaml):
    run = Experiment.from_yaml(synthetic_yaml, ["model.architecture=single", "train.epochs=6",
                                                "train.early_stopping={patience: 6, monitor: valid.loss}"]
                               ).fit(save=False)
    assert set(run.metrics["best_epoch"]) == {"liked", "kind", "score"}
    for name, epoch in run.metrics["best_epoch"].items():
        history = [h[f"valid.{name}.loss"] for h in run.history]
        assert history[epoch - 1] == min(history)
        assert run.metrics["valid"][name]["loss"] == pytest.approx(min(history), rel=1e-4)


def test_monitor_direction_follows_the_metric():
    from shopmtl.config import BinaryTask, RegressionTask
    from shopmtl.tasks import build_task

    tasks = {"a": build_task("a", BinaryTask(type="binary"), "a"),
             "r": build_task("r", RegressionTask(type="regression"), "r")}
    assert Monitor.parse("valid.mean_auc", "auto", tasks).higher_is_better
    assert not Monitor.parse("valid.r.rmse", "auto", tasks).higher_is_better
    assert not Monitor.parse("valid.loss", "auto", tasks).higher_is_better
    mon = Monitor.parse("valid.mean_auc", "auto", tasks)
    assert mon.value({"a": {"auc": 0.7}, "r": {"rmse": 2.0}}, {"a": 0.1, "r": 0.2}) == 0.7
    assert mon.better(0.8, 0.7) and not mon.better(math.nan, 0.7)
    with pytest.raises(ConfigError, match="did you mean `mean_auc`"):
        Monitor.parse("valid.mean_acu", "auto", tasks)
    with pytest.raises(ConfigError, match="task `r` has no metric `auc`"):
        Monitor.parse("valid.r.auc", "auto", tasks)


def test_cuda_asked_for_without_a_gpu_is_a_clear_error(synthetic_yaml):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="train.device: cuda was asked for"):
        Experiment.from_yaml(synthetic_yaml, ["train.device=cuda"]).fit(save=False)


def test_multihot_feature_and_multilabel_task_train(tmp_path, synthetic_csv):
    from .conftest import synthetic_config

    path = synthetic_config(tmp_path / "m.yaml", synthetic_csv,
                            features={"tags": {"type": "multihot"}, "colour": {"type": "categorical"}},
                            tasks={"tag_labels": {"type": "multilabel", "column": "tags"},
                                   "liked": {"type": "binary"}})
    run = Experiment.from_yaml(path, ["train.epochs=8"]).fit(save=False)
    assert run.metrics["test"]["tag_labels"]["micro_f1"] > 0.8  # the tags are visible in the input
    assert np.isfinite(run.metrics["test"]["liked"]["auc"])
