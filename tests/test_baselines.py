"""The practitioner's baselines inside the tool: fitted on the experiment's split, settings chosen on validation,
scored by the task code; `shopmtl baseline`, `compare --baselines`, and `shopmtl tune`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from shopmtl.analysis import baselines as bl
from shopmtl.cli import main
from shopmtl.config import load_config
from shopmtl.experiment import Experiment
from shopmtl.tasks.binary import BinaryTask

from .conftest import synthetic_config, synthetic_frame


def _prepared(path):
    exp = Experiment.from_yaml(path)
    frames, tasks = exp.prepare()
    return exp.config, frames, tasks


def test_baselines_are_scored_by_the_task_code(synthetic_yaml, monkeypatch):
    calls = []
    original = BinaryTask.metrics

    def counted(self, target, pred, groups=None):
        calls.append(len(target))
        return {**original(self, target, pred, groups), "scored_by_task": 1.0}

    monkeypatch.setattr(BinaryTask, "metrics", counted)
    config, frames, tasks = _prepared(synthetic_yaml)
    record = bl.run_baselines(config, frames, tasks)
    for family in ("linear", "lightgbm"):
        assert record["tasks"]["liked"][family]["test"]["scored_by_task"] == 1.0
    n_test = int(tasks["liked"].encode(tasks["liked"].label_values(frames["test"]))[1].sum())
    assert n_test in calls
    # every classification and regression task gets a linear model and LightGBM (the config has tabular inputs)
    assert set(record["tasks"]["kind"]) == {"linear", "lightgbm"}
    assert record["tasks"]["score"]["linear"]["label"] == "TF-IDF + ridge"
    # the synthetic signal is learnable: the baselines are real models
    assert record["tasks"]["liked"]["linear"]["test"]["auc"] > 0.8
    assert record["tasks"]["score"]["lightgbm"]["test"]["r2"] > 0.8
    assert record["best"]["liked"] in ("linear", "lightgbm")


def test_the_setting_is_the_one_best_on_validation():
    class FakeTask:
        primary = "auc"

        @staticmethod
        def higher_is_better(metric):
            return True

    class FakeData:
        def splits(self):
            return ["train", "valid", "test"]

        def score(self, task, split, pred):
            return {"auc": float(pred[0])}

    candidates = [({"C": c}, lambda s, c=c: np.array([{0.1: 0.6, 1.0: 0.8, 10.0: 0.7}[c] + (s == "test")]))
                  for c in (0.1, 1.0, 10.0)]
    setting, preds = bl._choose(FakeTask(), FakeData(), candidates)
    assert setting == {"C": 1.0} and preds["test"][0] == pytest.approx(1.8)


def test_tagging_tasks_get_the_feature_crf():
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(160):
        tokens = list(rng.choice(["buy", "the", "acme", "red", "shoe", "zeta"], size=5))
        tags = ["B-brand" if t in ("acme", "zeta") else "O" for t in tokens]
        rows.append({"tokens": tokens, "tags": tags})
    df = pd.DataFrame(rows)
    raw = {"name": "tag", "data": {"source": {"format": "csv", "path": "x"}, "split": {"valid": 0.2, "test": 0.2}},
           "features": {"title": {"type": "text", "column": "tokens", "min_count": 1}},
           "tasks": {"brand": {"type": "tagging", "text": "title", "column": "tags"}}}
    from shopmtl.config import config_from_dict

    exp = Experiment(config_from_dict(raw))
    frames, tasks = exp.prepare(df)
    record = bl.run_baselines(exp.config, frames, tasks)
    assert set(record["tasks"]["brand"]) == {"crf"}
    assert record["tasks"]["brand"]["crf"]["test"]["span_f1"] > 0.95  # brand words are always brands here
    assert record["tasks"]["brand"]["crf"]["setting"] in [{"c1": a, "c2": b} for a, b in bl.CRF_GRID]


def test_text_is_read_as_word_or_character_ngrams():
    assert not bl.reads_characters([["red", "dress"], ["a", "blue", "shirt"]])
    assert bl.reads_characters([list("红色连衣裙"), list("很好")])
    assert bl.NGrams(1, 3)(["a", "b", "c"]) == ["a", "b", "c", "a b", "b c", "a b c"]


def test_baseline_command_writes_its_folder(capsys, synthetic_yaml):
    assert main(["baseline", str(synthetic_yaml), "--families", "linear"]) == 0
    out = capsys.readouterr().out
    folder = out.split("baselines saved to ")[1].split()[0]
    record = json.loads(open(f"{folder}/baselines.json").read())
    assert set(record["tasks"]) == {"liked", "kind", "score"}
    assert all(set(v) == {"linear"} for v in record["tasks"].values())
    assert "| liked | auc | TF-IDF + LR" in out
    assert main(["baseline", str(synthetic_yaml), "--families", "linaer"]) == 2
    assert "did you mean `linear`" in capsys.readouterr().err


def test_compare_with_baselines_puts_them_in_the_table(capsys, synthetic_yaml):
    code = main(["compare", str(synthetic_yaml), "--seeds", "2", "--baselines", "linear", "--set", "train.epochs=2",
                 "--set", "report.explain_rows=0"])
    out = capsys.readouterr().out
    assert code == 0, out
    folder = out.split("comparison saved to ")[1].split()[0]
    record = json.loads(open(f"{folder}/compare.json").read())
    assert record["baseline_labels"] == ["baseline: TF-IDF + LR / ridge"]
    assert "baseline: TF-IDF + LR / ridge" in record["summary"]["labels"]
    vs = record["vs_baseline"]
    assert vs["models"][0] == "single" and {r["task"] for r in vs["rows"]} == {"liked", "kind", "score"}
    for row in vs["rows"]:
        for model in vs["models"]:
            cell = row[model]
            assert cell["below"] == (cell["gain_pct"] < 0)
    md = open(f"{folder}/compare.md").read()
    assert "## Against the strongest baseline" in md and "baseline: TF-IDF + LR" in md
    assert "against the strongest baseline" in open(f"{folder}/report.html").read()


def test_tune_with_three_trials_writes_a_config_that_trains(capsys, synthetic_yaml, tmp_path):
    code = main(["tune", str(synthetic_yaml), "--trials", "3", "--set", "train.epochs=2",
                 "--set", "report.explain_rows=0"])
    out = capsys.readouterr().out
    assert code == 0, out
    folder = out.split("tuning saved to ")[1].split()[0]
    trials = pd.read_csv(f"{folder}/trials.csv")
    assert len(trials) == 3 and set(trials["state"]) <= {"complete", "pruned"}
    best = f"{folder}/best.yaml"
    text = open(best).read()
    assert text.startswith("# chosen by `shopmtl tune` on the validation split")
    summary = json.loads(open(f"{folder}/tune.json").read())
    complete = trials[trials["state"] == "complete"]
    assert summary["best_value"] == pytest.approx(complete["value"].min())  # valid.loss: lower is better
    cfg = load_config(best)
    assert cfg.model.architecture == summary["best_params"]["model.architecture"]
    assert main(["train", best, "--set", "train.progress=false", "--set", "report.explain_rows=0"]) == 0
    assert "run saved to" in capsys.readouterr().out


def test_tune_space_errors_name_the_key(capsys, synthetic_yaml, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"train.lr": {"low": 0.1, "high": 0.01}}))
    assert main(["tune", str(synthetic_yaml), "--trials", "1", "--space", str(space)]) == 2
    assert "search space `train.lr`: low (0.1) must be below high (0.01)" in capsys.readouterr().err


def test_tune_against_the_baselines_reports_gains_per_task(capsys, tmp_path):
    csv = tmp_path / "s.csv"
    synthetic_frame(400).to_csv(csv, index=False)
    path = synthetic_config(tmp_path / "s.yaml", csv)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"train.lr": {"low": 0.003, "high": 0.03, "log": True}}))
    code = main(["tune", str(path), "--trials", "2", "--objective", "baselines", "--space", str(space),
                 "--set", "train.epochs=2", "--set", "report.explain_rows=0"])
    out = capsys.readouterr().out
    assert code == 0, out
    folder = out.split("tuning saved to ")[1].split()[0]
    summary = json.loads(open(f"{folder}/tune.json").read())
    assert set(summary["reference"]) == {"liked", "kind", "score"}
    trial = summary["trials"][0]
    gains = [trial[f"vs_baseline.{t}"] for t in ("liked", "kind", "score")]
    assert math.isclose(trial["value"], sum(gains) / 3, rel_tol=1e-9)


def test_tune_space_chooses_between_wide_first_and_wide_with_deep(tmp_path):
    from shopmtl.config import config_from_dict
    from shopmtl.tuning import default_space, trial_raw

    csv = tmp_path / "s.csv"
    synthetic_frame(50).to_csv(csv, index=False)
    raw = yaml.safe_load(synthetic_config(tmp_path / "s.yaml", csv).read_text())
    raw["features"]["grams"] = {"type": "sparse", "column": "text"}
    raw["model"]["wide"] = {"lr": 0.01}
    space = default_space(config_from_dict(raw))
    assert space["model.wide.pretrain"] == [None, {}, {"solver": "lbfgs"}]
    lbfgs = config_from_dict(trial_raw(raw, {"model.wide": "on", "model.wide.pretrain": {"solver": "lbfgs"}}))
    assert lbfgs.model.wide.pretrain.solver == "lbfgs"
    first = config_from_dict(trial_raw(raw, {"model.wide": "on", "model.wide.pretrain": {}}))
    together = config_from_dict(trial_raw(raw, {"model.wide": "on", "model.wide.pretrain": None}))
    assert first.model.wide.pretrain is not None and first.model.wide.pretrain.epochs == 50
    assert together.model.wide.pretrain is None and together.model.wide.lr == 0.01


def test_compare_fits_the_lbfgs_wide_term_once_for_all_its_seeds_and_variants(capsys, synthetic_yaml):
    code = main(["compare", str(synthetic_yaml), "--seeds", "2",
                 "--set", "features.grams={type: sparse, column: text, min_count: 1}",
                 "--set", "model.wide={pretrain: {solver: lbfgs, C: [0.1, 1.0], max_iter: 30}}",
                 "--set", "train.epochs=1", "--set", "report.explain_rows=0"])
    out = capsys.readouterr().out
    assert code == 0, out
    folder = Path(out.split("comparison saved to ")[1].split()[0])
    assert len(list((folder / "wide_fits").glob("*.pt"))) == 3  # one fit per task
    runs = json.loads((folder / "compare.json").read_text())["runs"]
    records = [json.loads((folder / path / "metrics.json").read_text())["wide_pretrain"]
               for label in runs for path in runs[label]]
    assert len(records) == 4 and "cached" not in records[0]  # single and shared_bottom, two seeds each
    assert all(sorted(r["cached"]) == ["kind", "liked", "score"] for r in records[1:])
    assert all(r["C"] == records[0]["C"] for r in records)


def test_train_reuses_wide_fits_from_a_wide_cache_folder(capsys, synthetic_yaml, tmp_path):
    args = ["train", str(synthetic_yaml), "--wide-cache", str(tmp_path / "fits"),
            "--set", "features.grams={type: sparse, column: text, min_count: 1}",
            "--set", "model.wide={pretrain: {solver: lbfgs, C: [0.1, 1.0], max_iter: 30}}",
            "--set", "train.epochs=1", "--set", "report.explain_rows=0"]
    first = [main(args), capsys.readouterr().out]
    second = [main(args), capsys.readouterr().out]
    assert first[0] == second[0] == 0
    records = [json.loads((Path(out.split("run saved to ")[1].split()[0]) / "metrics.json").read_text())
               for _, out in (first, second)]
    assert "cached" not in records[0]["wide_pretrain"] and len(list((tmp_path / "fits").glob("*.pt"))) == 3
    assert sorted(records[1]["wide_pretrain"]["cached"]) == ["kind", "liked", "score"]
