"""Who gains, who loses: Δm%, the comparison's statistics, task affinity and groupings, explanations, the report
(rendered in a real headless Chromium) and MLflow logging."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from shopmtl.analysis.affinity import partitions, suggest_groups
from shopmtl.analysis.compare import delta_m, summarise
from shopmtl.cli import main
from shopmtl.config import load_config
from shopmtl.errors import ConfigError
from shopmtl.experiment import Experiment
from shopmtl.training.affinity import AffinityMonitor

from .conftest import synthetic_config, synthetic_frame


# ------------------------------------------------------------------ Δm% and the comparison's statistics
def test_delta_m_against_hand_computed_values_with_mixed_directions():
    higher = {"ctr": True, "price": False, "kind": True}
    single = {"ctr": 0.80, "price": 2.0, "kind": 0.50}
    multi = {"ctr": 0.84, "price": 2.2, "kind": 0.55}
    # AUC up 5 % is a gain, RMSE up 10 % is a loss, accuracy up 10 % is a gain: (5 − 10 + 10) / 3
    assert delta_m(multi, single, higher) == pytest.approx(5.0 / 3)
    assert delta_m({"ctr": 0.76, "price": 1.8}, {"ctr": 0.80, "price": 2.0}, higher) == pytest.approx((-5 + 10) / 2)
    assert math.isnan(delta_m({}, single, higher))


def test_summary_flags_only_consistent_losses_and_reports_spread():
    metrics = {"click": "auc", "price": "rmse"}
    higher = {"click": True, "price": False}
    values = {
        "single": {"click": [0.70, 0.71, 0.70], "price": [1.00, 1.02, 0.98]},
        "worse": {"click": [0.60, 0.61, 0.60], "price": [1.01, 0.97, 1.02]},
        "better": {"click": [0.75, 0.76, 0.74], "price": [0.90, 0.91, 0.89]},
    }
    s = summarise(values, metrics, higher)
    rows = {r["task"]: r for r in s["rows"]}
    assert rows["click"]["worse"]["loses"] is True and rows["click"]["worse"]["p_value"] < 0.05
    assert rows["price"]["worse"]["loses"] is False  # noise around the single-task mean
    assert rows["click"]["better"]["loses"] is False and rows["price"]["better"]["gain_pct"] == pytest.approx(10.0)
    assert rows["click"]["single"]["mean"] == pytest.approx(0.70333, abs=1e-4)
    assert rows["click"]["single"]["std"] == pytest.approx(np.std([0.70, 0.71, 0.70], ddof=1))
    # Δm% per seed against the single-task mean, then mean ± std over seeds
    base = {"click": np.mean(values["single"]["click"]), "price": np.mean(values["single"]["price"])}
    per_seed = [((values["better"]["click"][k] - base["click"]) / base["click"]
                 - (values["better"]["price"][k] - base["price"]) / base["price"]) / 2 * 100 for k in range(3)]
    assert s["delta_m"]["better"]["mean"] == pytest.approx(np.mean(per_seed))
    assert s["delta_m"]["better"]["std"] == pytest.approx(np.std(per_seed, ddof=1))
    one = summarise({k: {t: v[:1] for t, v in d.items()} for k, d in values.items()}, metrics, higher)
    assert one["rows"][0]["worse"]["loses"] is None  # no test with one seed


# ------------------------------------------------------------------ affinity and groupings
def test_partitions_are_all_set_partitions():
    assert [len(list(partitions(list("abcdef"[:n])))) for n in range(1, 6)] == [1, 2, 5, 15, 52]  # Bell numbers
    assert sorted(map(sorted, next(p for p in partitions(["a", "b"]) if len(p) == 1))) == [["a", "b"]]


def test_groups_keep_helpers_together_and_adversaries_apart():
    z = {"a": {"a": 1, "b": 0.5, "c": -0.4}, "b": {"a": 0.4, "b": 1, "c": -0.3}, "c": {"a": -0.5, "b": -0.2, "c": 1}}
    groups = suggest_groups(z)
    assert sorted(map(sorted, groups["groups"])) == [["a", "b"], ["c"]]
    assert groups["score"] == pytest.approx(0.9)
    assert groups["by_count"]["1"]["groups"] == [["a", "b", "c"]]


def _monitor_run(targets: dict[str, float]) -> dict:
    """A shared scalar θ pulled by each task toward its own target: L_t = (θ − target)²."""
    theta = torch.nn.Parameter(torch.tensor([0.0]))
    opt = torch.optim.AdamW([theta], lr=0.05)
    tasks = list(targets)
    monitor = AffinityMonitor(tasks, [theta], every=1, optimizer=opt)
    for _ in range(3):
        losses = {t: ((theta - v) ** 2).sum() for t, v in targets.items()}
        grads = torch.stack([torch.autograd.grad(losses[t], [theta], retain_graph=True)[0] for t in tasks])
        monitor.measure(grads, lambda: {t: ((theta - v) ** 2).sum().detach() for t, v in targets.items()})
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    monitor.columns()
    return monitor.matrix()


def test_affinity_of_a_task_with_itself_is_positive_and_of_an_adversarial_pair_negative():
    z = _monitor_run({"up": 1.0, "down": -1.0, "also_up": 2.0})
    assert z["up"]["up"] > 0 and z["down"]["down"] > 0
    assert z["up"]["down"] < 0 and z["down"]["up"] < 0  # a step for one raises the other's loss
    assert z["up"]["also_up"] > 0
    assert sorted(map(sorted, suggest_groups(z)["groups"])) == [["also_up", "up"], ["down"]]


def test_affinity_leaves_parameters_as_they_were():
    theta = torch.nn.Parameter(torch.tensor([0.3, -0.2]))
    opt = torch.optim.AdamW([theta], lr=0.1)
    monitor = AffinityMonitor(["a", "b"], [theta], every=1, optimizer=opt)
    grads = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    before = theta.detach().clone()
    monitor.measure(grads, lambda: {"a": (theta ** 2).sum(), "b": ((theta - 1) ** 2).sum()})
    assert torch.equal(theta.detach(), before)


def test_training_records_affinity_cosine_and_groups(synthetic_yaml):
    # at a learning rate where training is smooth (at 0.01 a single step can overshoot a loss: then even a task's
    # affinity with itself turns negative, which is what the measure should say)
    run = Experiment(load_config(synthetic_yaml, ["train.affinity_every=2", "train.lr=0.003"])).fit()
    z = run.metrics["affinity"]
    assert set(z) == {"liked", "kind", "score"} and all(z[t][t] > 0 for t in z)
    cos = run.metrics["gradient_cosine"]
    assert cos["liked"]["kind"] == pytest.approx(cos["kind"]["liked"]) and cos["kind"]["kind"] == 1.0
    assert sum(len(g) for g in run.metrics["task_groups"]["groups"]) == 3
    assert any(k.startswith("affinity.liked.kind") for k in run.history[0])
    off = Experiment(load_config(synthetic_yaml, ["train.affinity_every=null", "train.conflict_every=null"])).fit(
        save=False)
    assert "affinity" not in off.metrics and not any(k.startswith("affinity.") for k in off.history[0])


# ------------------------------------------------------------------ explanations
@pytest.fixture
def noisy_yaml(tmp_path) -> Path:
    """Synthetic data plus a numeric column no label depends on."""
    df = synthetic_frame(900)
    df["noise"] = np.random.default_rng(5).normal(size=len(df))
    path = tmp_path / "noisy.csv"
    df.to_csv(path, index=False)
    return synthetic_config(tmp_path / "noisy.yaml", path,
                            features={"colour": {"type": "categorical"}, "size": {"type": "numeric"},
                                      "noise": {"type": "numeric"},
                                      "text": {"type": "text", "max_len": 8, "min_count": 1}},
                            train={"epochs": 8, "batch_size": 64, "lr": 0.01, "progress": False})


def test_explanations_are_complete_and_find_the_signal(noisy_yaml):
    from shopmtl.analysis.explain import attribute
    from shopmtl.data.batching import batches

    run = Experiment(load_config(noisy_yaml)).fit()
    share = run.metrics["explanations"]["tasks"]["score"]["feature_share"]
    assert share["size"] > 3 * share["noise"]  # score = 2·(1.5·red + size): size matters, noise does not
    # completeness: per row, the attributions add up to output − baseline output
    df = Experiment(load_config(noisy_yaml)).read_data().head(16)
    from shopmtl.data.batching import encode

    enc = encode(df, run.preprocessor, run.tasks, with_labels=False)
    feats = next(batches(enc, 16))["features"]
    result = attribute(run.model, run.tasks, feats, steps=64)
    for task in ("score", "liked", "kind"):
        spec = result[task]
        total = sum(a.reshape(a.shape[0], -1).sum(-1) for a in spec["features"].values())
        gap = spec["output"] - spec["baseline_output"]
        assert torch.allclose(total, gap, atol=0.05 * float(gap.abs().max()) + 1e-3)


def test_explain_command_prints_every_task_and_checks_the_row(synthetic_yaml, capsys, tmp_path):
    run = Experiment(load_config(synthetic_yaml)).fit()
    out = tmp_path / "why.json"
    assert main(["explain", str(run.path), "--row", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for task in ("liked", "kind", "score"):
        assert f"{task}: prediction" in printed
    assert "tokens of text" in printed
    saved = json.loads(out.read_text())
    assert set(saved["explanations"]) == {"liked", "kind", "score"}
    assert main(["explain", str(run.path), "--row", "100000"]) == 2
    assert "--row 100000" in capsys.readouterr().err


# ------------------------------------------------------------------ compare and the report
def test_compare_trains_every_variant_per_seed_and_writes_the_report(synthetic_yaml, tmp_path, capsys):
    code = main(["compare", str(synthetic_yaml), "--architectures", "shared_bottom,mmoe", "--balancers",
                 "equal,uncertainty", "--seeds", "2", "--set", "train.epochs=2", "--output-dir", str(tmp_path / "c")])
    assert code == 0
    folder = tmp_path / "c" / "synthetic-compare"
    record = json.loads((folder / "compare.json").read_text())
    labels = ["shared_bottom/equal", "shared_bottom/uncertainty", "mmoe/equal", "mmoe/uncertainty"]
    assert record["summary"]["labels"] == labels and record["seeds"] == [0, 1]
    assert {k: len(v) for k, v in record["runs"].items()} == {"single": 2, **{lab: 2 for lab in labels}}
    for lab in ["single", *labels]:  # every run really trained with its own architecture and balancer
        cfg = yaml.safe_load((folder / record["runs"][lab][1] / "config.yaml").read_text())
        assert cfg["seed"] == 1 and f"{cfg['model']['architecture']}/{cfg['balance']['method']}" in (lab, "single/equal")
    row = record["summary"]["rows"][0]
    assert len(row["shared_bottom/equal"]["values"]) == 2
    md = (folder / "compare.md").read_text()
    assert "Δm%" in md and "mmoe/uncertainty" in md
    page = (folder / "report.html").read_text()
    for fig in ("comparison", "mmoe-equal-expert_use", "mmoe-equal-affinity", "shared_bottom-equal-learning_curves"):
        assert f'data-figure="{fig}"' in page and (folder / "figures" / f"{fig}.png").stat().st_size > 1000
    (folder / "report.html").unlink()
    assert main(["report", str(folder)]) == 0 and (folder / "report.html").exists()
    assert "report written to" in capsys.readouterr().out


def test_compare_rejects_bad_variants(synthetic_yaml, capsys):
    assert main(["compare", str(synthetic_yaml), "--architectures", "single"]) == 2
    assert "baseline" in capsys.readouterr().err
    assert main(["compare", str(synthetic_yaml), "--architectures", "mmoee"]) == 2
    assert "mmoe" in capsys.readouterr().err
    assert main(["compare", str(synthetic_yaml), "--seeds", "0"]) == 2
    assert main(["report", "."]) == 2
    assert "neither a run folder" in capsys.readouterr().err


RUN_FIGURES = ("learning_curves", "task_weights", "conflict_over_time", "gradient_cosine", "affinity",
               "expert_use", "explanations")


def _chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or \
        "/usr/bin/chromedriver"
    if not (Path(browser).exists() and Path(driver).exists()):
        message = "Debian's chromium and chromium-driver are not installed (`make test` installs them as root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " — CI must have them")
        pytest.skip(message)
    pytest.importorskip("selenium", reason="selenium is in the dev extras")
    return browser, driver


def test_report_renders_in_headless_chromium_with_every_figure(synthetic_yaml, tmp_path):
    browser, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    run = Experiment(load_config(synthetic_yaml, ["model.architecture=mmoe", "balance.method=uncertainty"])).fit()
    page = run.path / "report.html"
    for fig in RUN_FIGURES:
        assert (run.path / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(page.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.dataset.figure, i.complete, i.naturalWidth])")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        title = driver.title
    finally:
        driver.quit()
    assert title == f"shopmtl run: {run.config.name}"
    assert not errors, errors
    shown = {name for name, complete, width in images if complete and width > 0}
    assert set(RUN_FIGURES) <= shown, set(RUN_FIGURES) - shown


# ------------------------------------------------------------------ MLflow
def test_mlflow_logs_params_metrics_and_report_to_a_local_store(tmp_path, synthetic_csv):
    pytest.importorskip("mlflow", reason="mlflow-skinny is in the dev extras")
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "mlruns").as_uri()
    path = synthetic_config(tmp_path / "tracked.yaml", synthetic_csv,
                            tracking={"mlflow": {"tracking_uri": store, "experiment": "shopmtl-test"}})
    run = Experiment(load_config(path)).fit()
    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("shopmtl-test")
    (logged,) = client.search_runs([exp.experiment_id])
    assert logged.data.params["model.architecture"] == "shared_bottom"
    assert logged.data.metrics["test.liked.auc"] == pytest.approx(run.metrics["test"]["liked"]["auc"])
    history = client.get_metric_history(logged.info.run_id, "valid.loss")
    assert [m.step for m in history] == list(range(1, len(run.history) + 1))
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"report.html", "metrics.json", "figures"} <= artifacts


def test_mlflow_asked_for_but_missing_is_a_config_error(monkeypatch, synthetic_csv, tmp_path):
    import builtins

    real = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    path = synthetic_config(tmp_path / "t.yaml", synthetic_csv, tracking={"mlflow": {}})
    with pytest.raises(ConfigError, match="pip install mlflow-skinny"):
        Experiment(load_config(path)).fit()


def test_unknown_tracking_field_is_named(synthetic_csv, tmp_path):
    path = synthetic_config(tmp_path / "t.yaml", synthetic_csv, tracking={"mlflow": {"uri": "file:x"}})
    with pytest.raises(ConfigError, match="uri"):
        load_config(path)

