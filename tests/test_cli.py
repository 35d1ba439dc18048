"""The command line: run folders, predict and evaluate, and bad input → one clear message and exit code 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from shopmtl.cli import main
from shopmtl.run import Run

from .conftest import synthetic_config, synthetic_frame


def train(capsys, config, *extra) -> Run:
    assert main(["train", str(config), *extra]) == 0
    out = capsys.readouterr().out
    path = out.split("run saved to ")[1].split()[0]
    return Run.load(path)


def error_of(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_train_writes_a_complete_run_folder(capsys, synthetic_yaml):
    run = train(capsys, synthetic_yaml)
    for name in ("config.yaml", "preprocessor.json", "model.pt", "metrics.json", "history.csv", "report.html"):
        assert (run.path / name).is_file(), name
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert set(metrics["test"]) == {"liked", "kind", "score"}
    assert metrics["rows"]["train"] + metrics["rows"]["valid"] + metrics["rows"]["test"] == 600
    history = pd.read_csv(run.path / "history.csv")
    assert len(history) == 3 and "valid.kind.accuracy" in history
    assert "<img" in (run.path / "report.html").read_text()


def test_a_second_run_never_overwrites_the_first(capsys, synthetic_yaml):
    first = train(capsys, synthetic_yaml, "--set", "train.epochs=1")
    second = train(capsys, synthetic_yaml, "--set", "train.epochs=1")
    assert first.path != second.path and first.path.exists() and second.path.name == "synthetic-2"


def test_loaded_run_predicts_like_the_trained_one(capsys, synthetic_yaml, synthetic_csv, tmp_path):
    run = train(capsys, synthetic_yaml)
    df = synthetic_frame(50, seed=5)
    again = Run.load(run.path)
    pd.testing.assert_frame_equal(run.predict(df), again.predict(df))


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_predict_streams_a_file_in_chunks(capsys, synthetic_yaml, tmp_path, suffix):
    run = train(capsys, synthetic_yaml, "--set", "train.epochs=1")
    source = tmp_path / f"items.{suffix}"
    frame = synthetic_frame(230, seed=9).drop(columns=["liked", "kind", "score"])
    frame.to_csv(source, index=False) if suffix == "csv" else frame.to_parquet(source)
    out = tmp_path / f"scores.{suffix}"
    assert main(["predict", str(run.path), str(source), "-o", str(out), "--chunksize", "50", "--keep", "colour"]) == 0
    result = pd.read_csv(out) if suffix == "csv" else pd.read_parquet(out)
    assert len(result) == 230
    assert sorted(result.columns) == ["colour", "kind", "kind_probability", "liked", "score"]
    assert result.columns[0] == "colour"
    assert result["liked"].between(0, 1).all() and set(result["kind"]) <= {"a", "b", "c"}
    # the same file again: refused, not overwritten
    err = error_of(capsys, ["predict", str(run.path), str(source), "-o", str(out)])
    assert "exists" in err and "--overwrite" in err


def test_evaluate_on_a_labelled_file(capsys, synthetic_yaml, tmp_path):
    run = train(capsys, synthetic_yaml)
    path = tmp_path / "new.csv"
    synthetic_frame(120, seed=11).to_csv(path, index=False)
    out_json = tmp_path / "m.json"
    assert main(["evaluate", str(run.path), "--data", str(path), "--json", str(out_json)]) == 0
    metrics = json.loads(out_json.read_text())
    assert metrics["kind"]["n"] == 120 and 0 <= metrics["liked"]["auc"] <= 1
    assert "120 rows" in capsys.readouterr().out


def test_unknown_column_names_the_closest_columns(capsys, tmp_path, synthetic_csv):
    config = synthetic_config(tmp_path / "c.yaml", synthetic_csv,
                              features={"colur": {"type": "categorical"}})
    err = error_of(capsys, ["train", str(config)])
    assert "features.colur: column `colur` is not in" in err and "did you mean `colour`" in err


def test_wrong_task_type_exits_2(capsys, tmp_path, synthetic_csv):
    config = synthetic_config(tmp_path / "c.yaml", synthetic_csv, tasks={"liked": {"type": "binaryy"}})
    assert "`type: binaryy` is not known" in error_of(capsys, ["train", str(config)])


def test_config_typo_exits_2(capsys, synthetic_yaml):
    err = error_of(capsys, ["train", str(synthetic_yaml), "--set", "train.batchsize=8"])
    assert "unknown field `batchsize`; did you mean `batch_size`?" in err


def test_binary_task_on_a_text_column_exits_2(capsys, tmp_path, synthetic_csv):
    config = synthetic_config(tmp_path / "c.yaml", synthetic_csv, tasks={"kind": {"type": "binary"}})
    assert "set tasks.kind.positive" in error_of(capsys, ["train", str(config)])


def test_unseen_label_at_evaluate_exits_2_and_can_be_ignored(capsys, synthetic_yaml, tmp_path):
    run = train(capsys, synthetic_yaml, "--set", "train.epochs=1")
    frame = synthetic_frame(40, seed=3)
    frame.loc[:4, "kind"] = "zzz"
    path = tmp_path / "new.csv"
    frame.to_csv(path, index=False)
    err = error_of(capsys, ["evaluate", str(run.path), "--data", str(path)])
    assert "tasks.kind: column `kind` holds label(s) never seen in training: ['zzz']" in err
    assert "--ignore-unseen-labels" in err
    assert main(["evaluate", str(run.path), "--data", str(path), "--ignore-unseen-labels"]) == 0


def test_predict_input_lacking_a_feature_exits_2(capsys, synthetic_yaml, tmp_path):
    run = train(capsys, synthetic_yaml, "--set", "train.epochs=1")
    path = tmp_path / "in.csv"
    synthetic_frame(10).drop(columns=["size"]).to_csv(path, index=False)
    err = error_of(capsys, ["predict", str(run.path), str(path), "-o", str(tmp_path / "o.csv")])
    assert "lacks feature column(s) ['size']" in err
    assert not (tmp_path / "o.csv").exists()


def test_empty_file_exits_2(capsys, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    config = synthetic_config(tmp_path / "c.yaml", empty)
    assert "empty" in error_of(capsys, ["train", str(config)])


def test_malformed_csv_row_exits_2_naming_the_line(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    frame = synthetic_frame(30)
    text = frame.to_csv(index=False).splitlines()
    text[7] = text[7] + ",1,2,3"
    bad.write_text("\n".join(text) + "\n")
    config = synthetic_config(tmp_path / "c.yaml", bad)
    err = error_of(capsys, ["train", str(config)])
    assert "malformed row" in err and "line 8" in err


def test_missing_data_path_and_not_a_run_folder_exit_2(capsys, tmp_path, synthetic_csv):
    config = synthetic_config(tmp_path / "c.yaml", tmp_path / "nowhere.csv")
    assert "does not exist" in error_of(capsys, ["train", str(config)])
    assert "is not a run folder" in error_of(capsys, ["evaluate", str(tmp_path)])


def test_list_shows_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("shared_bottom", "single", "equal", "static", "binary", "multilabel", "taobao_ecomm_cikm2019",
                 "womens_clothing_reviews", "parquet"):
        assert f"  {name} " in out


def test_static_weights_scale_task_losses(capsys, synthetic_yaml):
    raw = yaml.safe_load(synthetic_yaml.read_text())
    raw["balance"] = {"method": "static", "weights": {"liked": 3.0}}
    synthetic_yaml.write_text(yaml.safe_dump(raw))
    run = train(capsys, synthetic_yaml, "--set", "train.epochs=1")
    assert run.history[0]["weight.liked"] == 3.0 and run.history[0]["weight.kind"] == 1.0


def test_predict_ignores_label_columns_even_with_unseen_values(capsys, synthetic_yaml, tmp_path):
    run = train(capsys, synthetic_yaml, "--set", "train.epochs=1")
    frame = synthetic_frame(20, seed=4)
    frame["kind"] = "never-seen"
    path = tmp_path / "with_labels.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "o.csv"
    assert main(["predict", str(run.path), str(path), "-o", str(out)]) == 0
    assert set(pd.read_csv(out)["kind"]) <= {"a", "b", "c"}
