"""Wide & deep: sparse features (hashed n-grams, ids and crosses), the per-task wide term, quantile buckets of
numbers, and the token-window term of a tagger."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression

from shopmtl.config import SparseFeature, config_from_dict
from shopmtl.data.batching import Encoded, encode
from shopmtl.data.preprocess import NumericProcessor, SparseProcessor
from shopmtl.errors import ConfigError
from shopmtl.experiment import Experiment
from shopmtl.training.evaluate import predict

from .conftest import synthetic_frame

QUIET = {"conflict_every": None, "affinity_every": None, "progress": False}


def _logistic_frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Token sets whose presence drives a binary and a three-class label through known linear scores."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(40)]
    coef = rng.normal(scale=1.5, size=len(vocab))
    rows, liked, kind = [], [], []
    for _ in range(n):
        tokens = list(rng.choice(vocab, size=rng.integers(3, 8), replace=False))
        score = 0.5 * sum(coef[vocab.index(t)] for t in tokens)
        rows.append(" ".join(tokens))
        liked.append(int(rng.random() < 1 / (1 + np.exp(-score))))
        kind.append("abc"[int(np.argmax([score + rng.gumbel(), rng.gumbel(), -score + rng.gumbel()]))])
    return pd.DataFrame({"text": rows, "liked": liked, "kind": kind})


def _config(features: dict, tasks: dict, model: dict, train: dict | None = None) -> dict:
    return {"name": "wide", "output_dir": "runs",
            "data": {"source": {"format": "csv", "path": "unused.csv"}, "split": {"by": "random", "valid": 0.2,
                                                                                   "test": 0.2}},
            "features": features, "tasks": tasks, "model": model,
            "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, **QUIET, **(train or {})},
            "report": {"explain_rows": 0}}


def _design(run, frame: pd.DataFrame, name: str) -> csr_matrix:
    """The sparse feature as the matrix a linear model reads (ids 1 … n → columns 0 … n−1)."""
    enc = run.preprocessor.transform(frame)
    ids, w = enc[name], enc[name + "@w"]
    rows = np.repeat(np.arange(len(ids)), ids.shape[1])
    used = ids.reshape(-1) > 0
    size = run.preprocessor.processors[name].size - 1
    return csr_matrix((w.reshape(-1)[used], (rows[used], ids.reshape(-1)[used] - 1)), shape=(len(ids), size))


def test_wide_term_without_the_deep_path_is_a_per_task_logistic_regression():
    df = _logistic_frame()
    cfg = config_from_dict(_config(
        {"grams": {"type": "sparse", "column": "text", "ngrams": [1, 1], "weighting": "binary", "min_count": 1}},
        {"liked": {"type": "binary"}, "kind": {"type": "multiclass"}},
        {"wide": {"deep": False}},
        {"epochs": 200, "batch_size": 2000, "lr": 0.05, "weight_decay": 0.0, "early_stopping": None}))
    exp = Experiment(cfg)
    run = exp.fit(save=False, data=df)
    frames, tasks = exp.prepare(df)
    x_train, x_test = _design(run, frames["train"], "grams"), _design(run, frames["test"], "grams")
    ours = predict(run.model, run.tasks, encode(frames["test"], run.preprocessor, run.tasks, with_labels=False),
                   1024, torch.device("cpu"))
    for name in ("liked", "kind"):
        target, _ = tasks[name].encode(tasks[name].label_values(frames["train"]))
        reference = LogisticRegression(C=1e4, max_iter=10_000).fit(x_train, target.astype(int)).predict_proba(x_test)
        expected = reference[:, 1] if name == "liked" else reference
        assert np.abs(ours[name] - expected).max() < 0.03, name
    # nothing but the wide term trained: the deep path has no gradient and no say
    assert all(p.grad is None for p in run.model.sharing.parameters())


def test_hashed_ngrams_are_the_same_in_another_process():
    texts = ["Red cotton dress, size 12", "Blue denim jeans", "红色连衣裙 夏季", "red dress"] * 3
    cfg = SparseFeature(type="sparse", column="text", ngrams=[1, 2], min_count=1)
    proc = SparseProcessor(cfg)
    frame = pd.DataFrame({"text": texts})
    proc.fit(frame)
    ids, weights = proc.transform(frame)
    code = ("import json, sys, pandas as pd\n"
            "from shopmtl.config import SparseFeature\n"
            "from shopmtl.data.preprocess import SparseProcessor\n"
            "texts = json.loads(sys.argv[1])\n"
            "p = SparseProcessor(SparseFeature(type='sparse', column='text', ngrams=[1, 2], min_count=1))\n"
            "f = pd.DataFrame({'text': texts}); p.fit(f); ids, w = p.transform(f)\n"
            "print(json.dumps({'kept': p.kept.tolist(), 'ids': ids.tolist(), 'w': w.round(6).tolist()}))\n")
    other = json.loads(subprocess.run([sys.executable, "-c", code, json.dumps(texts)], check=True,
                                      capture_output=True, text=True, env={"PYTHONHASHSEED": "12345",
                                                                           **_env()}).stdout)
    assert other["kept"] == proc.kept.tolist()
    assert other["ids"] == ids.tolist()
    assert np.allclose(other["w"], weights, atol=1e-6)
    # TF-IDF rows are L2-normalised; unigrams and bigrams of the first title are all there
    assert np.allclose(np.linalg.norm(weights, axis=1), 1.0, atol=1e-5)
    assert (ids[0] > 0).sum() == len(proc.tokens(frame.iloc[:1])[0])


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}


def test_sparse_ids_cross_columns_and_bucket_numbers():
    frame = pd.DataFrame({"user": ["u1", "u1", "u2", None], "cate": ["c1", "c2", "c1", "c1"],
                          "clicks": [0, 3, 10, np.nan]})
    cfg = SparseFeature(type="sparse", source="ids", columns=["user", "cate"], numeric=["clicks"],
                        cross=[["user", "cate"]], quantiles=2, min_count=1)
    proc = SparseProcessor(cfg)
    proc.fit(frame)
    tokens = proc.tokens(frame)
    assert tokens[0] == ["user=u1", "cate=c1", "clicks#q1", "user=u1&cate=c1"]
    assert tokens[3] == ["cate=c1", "clicks#na"]  # a missing id yields no token and no cross
    ids, weights = proc.transform(frame)
    assert (weights[ids > 0] == 1.0).all()  # ids are weighted 1 (binary) by default
    assert ((ids > 0).sum(1) == [4, 4, 4, 2]).all()


def test_sparse_values_carry_standardised_numbers_and_a_missing_flag():
    frame = pd.DataFrame({"cate": ["c1", "c2", "c1", "c2"], "clicks": [0.0, 3.0, 8.0, np.nan]})
    cfg = SparseFeature(type="sparse", source="ids", columns=["cate"], values=["clicks"], log1p=True, min_count=1)
    proc = SparseProcessor(cfg)
    proc.fit(frame)
    ids, weights = proc.transform(frame)
    assert proc.size == 1 + 2 + 2  # padding, two categories, the value and its missing flag
    logs = np.log1p([0.0, 3.0, 8.0])
    mean, std = logs.mean(), logs.std()
    value_id, missing_id = 3, 4
    assert np.allclose(weights[:3][ids[:3] == value_id], (logs - mean) / std, atol=1e-6)
    assert (ids[3] == missing_id).sum() == 1 and (ids[3] == value_id).sum() == 0
    again = SparseProcessor.from_state(cfg, json.loads(json.dumps(proc.state())))
    assert np.array_equal(again.transform(frame)[0], ids)
    only = SparseProcessor(SparseFeature(type="sparse", source="ids", values=["clicks"]))  # numbers alone
    only.fit(frame)
    assert only.size == 3 and ((only.transform(frame)[0] > 0).sum(1) == 1).all()


def test_unseen_tokens_are_dropped_at_transform():
    cfg = SparseFeature(type="sparse", column="text", ngrams=[1, 1], min_count=2)
    proc = SparseProcessor(cfg)
    proc.fit(pd.DataFrame({"text": ["a b", "a c", "b d"]}))
    ids, _ = proc.transform(pd.DataFrame({"text": ["a z", "zz", "b"]}))
    assert proc.size == 3  # a, b kept (two rows each); c, d seen once
    assert (ids > 0).sum(1).tolist() == [1, 0, 1]


def test_quantile_buckets_are_fitted_on_the_training_split_only(tmp_path):
    df = synthetic_frame(600)
    df["part"] = np.where(np.arange(600) % 5 == 0, "test", np.where(np.arange(600) % 5 == 1, "valid", "train"))
    raw = _config({"size": {"type": "numeric", "buckets": 4}, "colour": {"type": "categorical"}},
                  {"liked": {"type": "binary"}}, {"bottom_layers": [8], "tower_layers": [4]})
    raw["data"]["split"] = {"by": "column", "column": "part"}
    cfg = config_from_dict(raw)
    exp = Experiment(cfg)
    shifted = df.copy()
    not_train = (df["part"] != "train").to_numpy()
    shifted.loc[not_train, "size"] = shifted.loc[not_train, "size"] + 1000.0  # valid/test far outside train
    run = exp.fit(save=False, data=shifted)
    edges = run.preprocessor.processors["size"].edges
    train_sizes = df.loc[~not_train, "size"].to_numpy()
    expected = np.quantile(train_sizes, [0.25, 0.5, 0.75])
    assert np.allclose(edges, expected)
    assert max(edges) < train_sizes.max()
    # the bucket embedding is read next to the standardised value and the missing flag
    assert run.model.sharing.inputs.encoders["size"].out_dim == 2 + 8
    proc = NumericProcessor(cfg.features["size"], edges=edges)
    _, buckets = proc.transform(pd.Series([-100.0, expected[1], 100.0, np.nan]))
    assert buckets.tolist() == [1, 2, 4, 0]


def test_wide_and_deep_trains_every_task_type_and_predicts_after_loading(tmp_path):
    df = synthetic_frame(500)
    csv = tmp_path / "s.csv"
    df.to_csv(csv, index=False)
    raw = _config(
        {"text": {"type": "text", "max_len": 8, "min_count": 1},
         "grams": {"type": "sparse", "column": "text", "min_count": 1, "deep": True, "embed_dim": 8},
         "ids": {"type": "sparse", "source": "ids", "columns": ["colour"], "numeric": ["size"],
                 "cross": [["colour", "size"]]},
         "size": {"type": "numeric", "buckets": 5}},
        {"liked": {"type": "binary"}, "kind": {"type": "multiclass"}, "score": {"type": "regression"},
         "tags": {"type": "multilabel"}},
        {"bottom_layers": [16], "tower_layers": [8], "text": {"encoder": "bag", "embed_dim": 8},
         "wide": {"weight_decay": 1e-4, "lr": 0.02}})
    raw["data"]["source"]["path"] = str(csv)
    raw["report"] = {"explain_rows": 16, "explain_steps": 4}
    run = Experiment(config_from_dict(raw)).fit()
    assert set(run.model.wide) == {"liked", "kind", "score", "tags"}
    assert run.model.wide["kind"].table.weight.shape[1] == 3
    assert run.model.wide["kind"].table.weight.abs().sum() > 0  # the wide term learned
    for name in run.tasks:
        assert np.isfinite(run.metrics["test"][name][run.tasks[name].primary])
    from shopmtl.run import Run

    again = Run.load(run.path)
    pd.testing.assert_frame_equal(again.predict(df.head(20)), run.predict(df.head(20)))
    # explanations attribute the sparse features at their weights (wide and deep paths together)
    share = run.metrics["explanations"]["tasks"]["liked"]["feature_share"]
    assert {"grams", "ids", "size", "text"} <= set(share) and share["ids"] > 0
    assert abs(sum(share.values()) - 1) < 1e-6


def test_sparse_feature_that_nothing_reads_is_a_config_error():
    raw = _config({"grams": {"type": "sparse", "column": "text"}}, {"liked": {"type": "binary"}}, {})
    with pytest.raises(ConfigError, match="nothing reads this sparse feature"):
        config_from_dict(raw)
    raw = _config({"text": {"type": "text"}}, {"liked": {"type": "binary"}}, {"wide": {}})
    with pytest.raises(ConfigError, match="the wide term reads `type: sparse` features and there are none"):
        config_from_dict(raw)
    raw = _config({"g": {"type": "sparse", "source": "ids", "columns": ["a"], "cross": [["a", "b"]]}},
                  {"liked": {"type": "binary"}}, {"wide": {}})
    with pytest.raises(ConfigError, match="cross: `b` is not in `columns` or `numeric`"):
        config_from_dict(raw)


def test_window_emissions_score_the_template_and_start_at_zero():
    from shopmtl.features.windows import OFFSETS, WindowEmissions, crf_features

    window = WindowEmissions(["a", "b", "1"], n_tags=3, buckets=64)
    ids = torch.tensor([[2, 3, 4, 0]])
    assert window(ids).abs().sum() == 0  # a linear model starts at zero
    with torch.no_grad():
        window.unigrams.weight[2, 1] = 1.0  # token "a" at offset 0 → tag 1
    out = window(ids)
    assert out[0, 0, 1] == 1.0 and out[0, 1, 1] == 0.0
    # the CRF baseline's features follow the same template
    feats = crf_features(["a", "b", "1"])
    assert {f"t{d:+d}" for d in OFFSETS} <= set(feats[0]) and feats[2]["shape"] == "digit"


def _pretrain_config(freeze: bool) -> dict:
    return _config(
        {"text": {"type": "text", "tokenizer": "words", "max_len": 8, "min_count": 1},
         "grams": {"type": "sparse", "column": "text", "ngrams": [1, 1], "min_count": 1}},
        {"liked": {"type": "binary"}, "kind": {"type": "multiclass"}},
        {"bottom_layers": [16], "tower_layers": [8], "text": {"encoder": "bag", "embed_dim": 8},
         "wide": {"lr": 0.05, "pretrain": {"epochs": 40, "patience": 3, "freeze": freeze}}},
        {"epochs": 4, "lr": 0.01, "early_stopping": {"patience": 2, "monitor": "valid.primary"}})


def test_model_started_from_the_wide_fit_outputs_the_wide_model():
    from shopmtl.data.preprocess import Preprocessor
    from shopmtl.model import MultiTaskModel

    df = _logistic_frame(400)
    cfg = config_from_dict(_pretrain_config(freeze=True))
    frames, tasks = Experiment(cfg).prepare(df)
    pre = Preprocessor(cfg).fit(frames["train"])
    batch = encode(frames["valid"], pre, tasks)
    features = {k: torch.as_tensor(v) for k, v in batch.features.items()}
    full = MultiTaskModel(cfg, pre, tasks)
    wide_only = MultiTaskModel(config_from_dict({**_pretrain_config(True),
                                                 "model": {"wide": {"deep": False}}}), pre, tasks)
    torch.manual_seed(1)
    for p in wide_only.wide.parameters():
        torch.nn.init.normal_(p)
    full.start_from_wide(wide_only.wide.state_dict(), freeze=True)
    full.eval(), wide_only.eval()
    with torch.no_grad():
        ours, reference = full(features), wide_only(features)
    for name in tasks:
        torch.testing.assert_close(ours[name], reference[name])
    assert not any(p.requires_grad for p in full.wide.parameters())
    assert all(p.requires_grad for p in full.heads.parameters())


@pytest.mark.parametrize("freeze", [True, False])
def test_wide_pretrain_then_deep_never_ends_below_the_wide_fit_on_validation(freeze):
    from shopmtl.analysis.compare import relative_gain

    df = _logistic_frame(900)
    run = Experiment(config_from_dict(_pretrain_config(freeze))).fit(save=False, data=df)
    pre = run.metrics["wide_pretrain"]
    assert set(pre["best_epoch"]) == {"liked", "kind"} and pre["epochs_run"] > 1 and pre["seconds"] > 0
    # the deep training starts from the wide fit (each task at its own best epoch) and that start stays a
    # candidate per task: a task the deep path does not help keeps its wide model, so no task ends below it
    start, final = pre["valid"], run.metrics["valid"]
    for name, task in run.tasks.items():
        gain = relative_gain(final[name][task.primary], start[name][task.primary], task.higher_is_better(task.primary))
        assert gain >= -1e-9, name
        if name in pre["wide_only"]:
            assert final[name][task.primary] == pytest.approx(start[name][task.primary], abs=1e-9), name
            assert not run.model.heads[name].weight.any(), name  # its deep output stays at zero
    if freeze:
        assert not any(p.requires_grad for p in run.model.wide.parameters())


def test_wide_pretrain_needs_the_deep_path():
    raw = _pretrain_config(False)
    raw["model"]["wide"]["deep"] = False
    with pytest.raises(ConfigError, match="model.wide.pretrain: with deep: false"):
        config_from_dict(raw)


def test_wide_only_model_with_an_unread_text_feature_is_explained():
    raw = _pretrain_config(False)
    raw["model"] = {"wide": {"deep": False}}
    raw["report"] = {"explain_rows": 32, "explain_steps": 4}
    run = Experiment(config_from_dict(raw)).fit(save=False, data=_logistic_frame(300))
    share = run.metrics["explanations"]["tasks"]["liked"]["feature_share"]
    assert share.get("grams", 0) > 0.99  # the text feature is not read at all


def test_lbfgs_wide_fit_is_scikit_learns_logistic_regression_at_the_chosen_c():
    from shopmtl.data.preprocess import Preprocessor
    from shopmtl.model import MultiTaskModel
    from shopmtl.training.wide import pretrain_wide

    df = _logistic_frame(1200)
    raw = _pretrain_config(False)
    raw["features"]["grams"]["weighting"] = "binary"
    raw["model"]["wide"]["pretrain"] = {"solver": "lbfgs", "C": [0.01, 0.3, 10.0], "max_iter": 500,
                                        "patience": 3}
    cfg = config_from_dict(raw)
    frames, tasks = Experiment(cfg).prepare(df)
    pre = Preprocessor(cfg).fit(frames["train"])
    enc = {s: encode(frames[s], pre, tasks) for s in ("train", "valid", "test")}
    state, record = pretrain_wide(cfg, pre, tasks, enc["train"], enc["valid"], np.random.default_rng(0),
                                  torch.device("cpu"))
    assert record["solver"] == "lbfgs"
    for name, scores in record["valid_by_C"].items():  # the grid, then the midpoints around its best value
        grid_best = max([0.01, 0.3, 10.0], key=lambda c: scores[f"{c:.4g}"])
        midpoints = {f"{(c * grid_best) ** 0.5:.4g}" for c in (0.01, 0.3, 10.0) if c != grid_best
                     and abs(np.log10(c / grid_best)) < 1.6}
        assert set(scores) == {"0.01", "0.3", "10"} | midpoints, name
    wide_only = MultiTaskModel(config_from_dict({**raw, "model": {"wide": {"deep": False}}}), pre, tasks)
    wide_only.wide.load_state_dict(state)
    ours = predict(wide_only, tasks, enc["test"], 1024, torch.device("cpu"))

    class _Run:  # what `_design` reads
        preprocessor = pre
    x_train, x_test = _design(_Run, frames["train"], "grams"), _design(_Run, frames["test"], "grams")
    for name in ("liked", "kind"):
        scores = record["valid_by_C"][name]
        best_c = record["C"][name]
        assert scores[f"{best_c:.4g}"] == max(scores.values())  # the C with the best validation AUC / accuracy
        target, _ = tasks[name].encode(tasks[name].label_values(frames["train"]))
        reference = LogisticRegression(C=best_c, max_iter=10_000, tol=1e-8).fit(x_train, target.astype(int))
        expected = reference.predict_proba(x_test)
        expected = expected[:, 1] if name == "liked" else expected
        assert np.abs(ours[name] - expected).max() < 2e-3, name


def test_lbfgs_wide_fit_refuses_funnel_tasks():
    raw = _pretrain_config(False)
    raw["tasks"] = {"liked": {"type": "binary"}, "kind": {"type": "binary", "after": "liked"}}
    raw["model"]["wide"]["pretrain"] = {"solver": "lbfgs"}
    with pytest.raises(ConfigError, match="funnel task `kind` .* use solver: adam"):
        config_from_dict(raw)


def test_lbfgs_wide_fit_is_cached_per_task_and_reused_only_for_the_same_inputs(tmp_path):
    from shopmtl.data.preprocess import Preprocessor
    from shopmtl.training.wide import pretrain_wide

    raw = _pretrain_config(False)
    raw["model"]["wide"]["pretrain"] = {"solver": "lbfgs", "C": [0.1, 1.0], "max_iter": 50}
    cfg = config_from_dict(raw)
    frames, tasks = Experiment(cfg).prepare(_logistic_frame(600))
    pre = Preprocessor(cfg).fit(frames["train"])
    enc = {s: encode(frames[s], pre, tasks) for s in ("train", "valid")}

    def fitted(train, cache) -> tuple[dict, dict]:
        return pretrain_wide(cfg, pre, tasks, train, enc["valid"], np.random.default_rng(0), torch.device("cpu"),
                             cache)

    fresh, first = fitted(enc["train"], tmp_path)
    assert "cached" not in first and len(list(tmp_path.glob("*.pt"))) == 2  # one file per task
    again, second = fitted(enc["train"], tmp_path)
    assert second["cached"] == ["liked", "kind"] and second["C"] == first["C"]
    assert second["fit_seconds_total"] == pytest.approx(sum(first["fit_seconds"].values()))
    for key in fresh:
        assert torch.equal(fresh[key], again[key]), key
    flipped_targets = dict(enc["train"].targets, liked=1 - enc["train"].targets["liked"])
    changed = Encoded(enc["train"].features, flipped_targets, enc["train"].masks, enc["train"].groups,
                      enc["train"].text)
    flipped, third = fitted(changed, tmp_path)  # other targets for one task: that task alone is fitted anew
    assert third["cached"] == ["kind"]
    assert not torch.equal(flipped["liked.table.weight"], fresh["liked.table.weight"])
    uncached, _ = fitted(enc["train"], None)
    for key in fresh:
        assert torch.allclose(fresh[key], uncached[key]), key


def test_wide_pretrain_with_nothing_to_fit_first_is_refused():
    raw = _pretrain_config(False)
    raw["tasks"] = {"tags": {"type": "tagging", "text": "text", "column": "tags"}}
    with pytest.raises(ConfigError, match="model.wide.pretrain: nothing to fit first"):
        config_from_dict(raw)
