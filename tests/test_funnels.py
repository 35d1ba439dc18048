"""Funnels (`after:`, ESMM): p(task) = p(parent)·p(task | parent), chains and branches, on every architecture;
the data check that refuses a funnel its data contradicts; config errors."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from shopmtl import Experiment
from shopmtl.architectures import ARCHITECTURES
from shopmtl.config import config_from_dict
from shopmtl.data.batching import batches, encode
from shopmtl.data.preprocess import Preprocessor
from shopmtl.errors import ConfigError, DataError
from shopmtl.model import MultiTaskModel, funnel_logit
from shopmtl.run import Run, build_tasks

FUNNEL = {"view": {"type": "binary"}, "cart": {"type": "binary", "after": "view"},
          "buy": {"type": "binary", "after": "cart"}, "fav": {"type": "binary", "after": "view"}}


def funnel_frame(n: int = 1500, seed: int = 0, stray: float = 0.0) -> pd.DataFrame:
    """view → cart → buy (a chain) and view → fav (a branch); `stray`: share of buys made without a cart."""
    rng = np.random.default_rng(seed)
    price = rng.normal(size=n)
    quality = rng.normal(size=n)
    brand = rng.choice(["a", "b", "c", "d"], n)
    view = (quality + rng.normal(scale=0.8, size=n) > -0.3).astype(int)
    cart = view * (quality - price + rng.normal(scale=0.8, size=n) > 0.3).astype(int)
    buy = cart * (rng.random(n) < 0.6).astype(int)
    fav = view * ((brand == "a") | (rng.random(n) < 0.1)).astype(int)
    if stray:
        extra = (cart == 0) & (rng.random(n) < stray)
        buy = np.where(extra, 1, buy)
    return pd.DataFrame({"price": price, "quality": quality, "brand": brand, "view": view, "cart": cart,
                         "buy": buy, "fav": fav})


def funnel_config(architecture: str = "shared_bottom", tasks: dict | None = None, epochs: int = 8):
    return config_from_dict({
        "name": "funnel", "data": {"source": {"format": "csv"}, "split": {"by": "random", "valid": 0.2, "test": 0.2}},
        "features": {"price": {"type": "numeric"}, "quality": {"type": "numeric"}, "brand": {"type": "categorical"}},
        "tasks": tasks or FUNNEL,
        "model": {"architecture": architecture, "bottom_layers": [16], "tower_layers": [8], "dropout": 0.0},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 0.01, "progress": False,
                  "early_stopping": {"patience": 3, "monitor": "valid.mean_auc"}}})


def test_funnel_logit_is_the_logit_of_the_product():
    a = torch.linspace(-6, 6, 25).repeat_interleave(25)
    b = torch.linspace(-6, 6, 25).repeat(25)
    out = funnel_logit(a, b)
    expected = torch.logit(torch.sigmoid(a.double()) * torch.sigmoid(b.double()))
    assert torch.allclose(out.double(), expected, atol=1e-4)


def test_funnel_outputs_never_exceed_their_parent_even_at_extreme_logits():
    torch.manual_seed(0)
    parent = torch.cat([torch.randn(1000) * 10, torch.tensor([-80.0, 80.0, 0.0, 30.0])])
    child = torch.cat([torch.randn(1000) * 10, torch.tensor([80.0, 80.0, 80.0, -30.0])])
    out = funnel_logit(parent, child)
    assert torch.isfinite(out).all()
    assert (torch.sigmoid(out) <= torch.sigmoid(parent) + 1e-6).all()


@pytest.mark.parametrize("architecture", ARCHITECTURES.names())
def test_every_architecture_composes_chains_and_branches(architecture):
    cfg = funnel_config(architecture)
    df = funnel_frame(200)
    pre = Preprocessor(cfg).fit(df)
    tasks = build_tasks(cfg)
    torch.manual_seed(0)
    model = MultiTaskModel(cfg, pre, tasks)
    with torch.no_grad():  # make the heads confident so the bound is tested away from 0.5
        for head in model.heads.values():
            head.bias.add_(3.0)
    batch = next(batches(encode(df, pre, tasks), 200))
    out = {k: torch.sigmoid(v.squeeze(-1)) for k, v in model(batch["features"], conditional=True).items()}
    assert set(out) == {"view", "cart", "buy", "fav", "cart|view", "buy|cart", "fav|view"}
    assert (out["cart"] <= out["view"] + 1e-6).all() and (out["buy"] <= out["cart"] + 1e-6).all()
    assert (out["fav"] <= out["view"] + 1e-6).all()
    assert torch.allclose(out["buy"], out["view"] * out["cart|view"] * out["buy|cart"], atol=1e-5)
    # trained on the entire space: the child's loss reaches the parent's head (ESMM)
    model.zero_grad()
    y = batch["targets"]["buy"]
    torch.nn.functional.binary_cross_entropy_with_logits(model(batch["features"])["buy"].squeeze(-1), y).backward()
    assert model.heads["view"].weight.grad.abs().sum() > 0 and model.heads["cart"].weight.grad.abs().sum() > 0
    assert model.heads["fav"].weight.grad is None


def test_a_trained_funnel_predicts_within_its_parents_and_writes_conditionals(tmp_path):
    df = funnel_frame()
    run = Experiment(funnel_config("mmoe")).fit(data=df)
    assert run.metrics["funnels"]["buy"] == {"after": "cart", "positives": run.metrics["funnels"]["buy"]["positives"],
                                             "outside_parent": 0, "share": 0.0}
    assert run.metrics["test"]["cart"]["auc"] > 0.8 and run.metrics["test"]["view"]["auc"] > 0.8
    pred = Run.load(run.path).predict(df.drop(columns=["view", "cart", "buy", "fav"]))
    assert {"cart_given_view", "buy_given_cart", "fav_given_view"} <= set(pred.columns)
    assert (pred["buy"] <= pred["cart"] + 1e-6).all() and (pred["cart"] <= pred["view"] + 1e-6).all()
    assert np.allclose(pred["cart"], pred["view"] * pred["cart_given_view"], atol=1e-4)
    assert "funnels (training split)" in (run.path / "report.html").read_text()


def test_a_funnel_the_data_contradicts_is_refused_and_a_small_breach_is_warned(caplog):
    df = funnel_frame(stray=0.3)
    with pytest.raises(DataError, match=r"tasks.buy.after: \d+\.\d% of the training rows with buy=1 have cart=0.*"
                                        r"after_tolerance=0.1.*Remove `after:`"):
        Experiment(funnel_config()).fit(save=False, data=df)
    df = funnel_frame(stray=0.01)
    tasks = {**FUNNEL, "buy": {"type": "binary", "after": "cart", "after_tolerance": 0.5}}
    with caplog.at_level(logging.WARNING, logger="shopmtl"):
        run = Experiment(funnel_config(tasks=tasks, epochs=1)).fit(save=False, data=df)
    check = run.metrics["funnels"]["buy"]
    assert check["outside_parent"] > 0 and 0 < check["share"] < 0.5
    assert any("tasks.buy.after" in r.getMessage() and "cannot fit them" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("tasks", "message"), [
    ({"view": {"type": "binary"}, "buy": {"type": "binary", "after": "veiw"}},
     r"tasks.buy.after: unknown task `veiw`; did you mean `view`"),
    ({"view": {"type": "multiclass"}, "buy": {"type": "binary", "after": "view"}},
     r"tasks.buy.after: `view` is a multiclass task; a funnel's parent must be a binary task"),
    ({"view": {"type": "binary", "after": "buy"}, "buy": {"type": "binary", "after": "view"}},
     r"the funnel view → buy → view is a cycle"),
    ({"buy": {"type": "binary", "after": "buy"}}, r"the funnel buy → buy is a cycle"),
    ({"view": {"type": "binary"}, "spend": {"type": "regression", "after": "view"}},
     r"tasks.spend: `after:` makes a funnel .* needs a binary task; this one is regression"),
])
def test_funnel_config_errors_name_the_field(tasks, message):
    with pytest.raises(ConfigError, match=message):
        funnel_config(tasks=tasks)


def test_funnel_tasks_report_ctcvr_auc_and_so_do_their_baselines():
    from shopmtl.analysis.baselines import run_baselines
    from shopmtl.tasks.binary import safe_auc

    tasks = {"view": {"type": "binary"}, "cart": {"type": "binary", "after": "view"}}
    exp = Experiment(funnel_config(tasks=tasks, epochs=4))
    df = funnel_frame()
    run = exp.fit(save=False, data=df)
    frames, fitted = exp.prepare(df)
    test = frames["test"]
    pred = run.predict(test)
    joint = ((test["view"] == 1) & (test["cart"] == 1)).to_numpy().astype(float)
    assert run.metrics["test"]["cart"]["ctcvr_auc"] == pytest.approx(safe_auc(joint, pred["cart"].to_numpy()),
                                                                     abs=1e-6)
    assert "ctcvr_auc" not in run.metrics["test"]["view"]
    record = run_baselines(exp.config, frames, fitted, ["linear"])
    entry = record["tasks"]["cart"]["linear"]
    assert 0.5 < entry["test"]["ctcvr_auc"] <= 1.0 and "C" in entry["setting_given_parent"]
