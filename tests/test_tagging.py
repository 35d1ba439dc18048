"""Tagging: BIO/BIOES decoding, span F1, the CRF against brute force, token/tag readers, and tagging tasks trained
next to classification tasks on one shared text encoder."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from shopmtl.cli import main
from shopmtl.config import config_from_dict
from shopmtl.data.readers import read_table
from shopmtl.errors import ConfigError, DataError
from shopmtl.experiment import Experiment
from shopmtl.run import Run
from shopmtl.tasks.crf import CRF
from shopmtl.tasks.spans import (
    allowed_transitions,
    scheme_tags,
    span_scores,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)


# ---------------------------------------------------------------- decoding
@pytest.mark.parametrize("tags, spans", [
    (["O", "I-X", "I-X", "O"], [("X", 1, 3)]),  # I- without B- opens a span
    (["O", "B-X", "I-X"], [("X", 1, 3)]),  # a span at the end
    (["B-X"], [("X", 0, 1)]),
    (["B-X", "I-Y", "I-Y"], [("X", 0, 1), ("Y", 1, 3)]),  # a type change inside a span splits it
    (["B-X", "B-X", "I-X"], [("X", 0, 1), ("X", 1, 3)]),  # B- after B- starts another span
    (["I-X", "O", "I-X"], [("X", 0, 1), ("X", 2, 3)]),
    (["S-X", "B-Y", "E-Y", "O"], [("X", 0, 1), ("Y", 1, 3)]),  # BIOES
    (["B-X", "E-X", "E-X"], [("X", 0, 2), ("X", 2, 3)]),  # E- that continues nothing is a one-token span
    (["U-X", "B-Y", "L-Y"], [("X", 0, 1), ("Y", 1, 3)]),  # BILOU
    (["B-X", "I-X", "E-X", "I-X"], [("X", 0, 3), ("X", 3, 4)]),
    (["O", "O"], []),
    ([], []),
])
def test_tags_decode_to_spans(tags, spans):
    assert tags_to_spans(tags) == spans


def test_a_tag_without_type_or_prefix_is_refused():
    with pytest.raises(ValueError, match="neither `O`"):
        split_tag("brand")
    with pytest.raises(ValueError):
        split_tag("B-")


@pytest.mark.parametrize("scheme", ["bio", "bioes"])
def test_spans_survive_a_round_trip_and_overlaps_are_dropped(scheme):
    spans = [("X", 0, 2), ("Y", 2, 3), ("X", 5, 8)]
    tags = spans_to_tags(spans + [("Y", 1, 4)], 9, scheme)  # (Y, 1, 4) overlaps two spans: dropped
    assert tags_to_spans(tags) == spans
    assert spans_to_tags([("X", 7, 12)], 9, scheme)[-2:] == (["B-X", "I-X"] if scheme == "bio" else ["B-X", "E-X"])
    if scheme == "bioes":
        assert tags[2] == "S-Y" and tags[:2] == ["B-X", "E-X"]


def test_span_scores_match_hand_computed_values():
    gold = [[("X", 0, 2), ("Y", 3, 4)], [("X", 1, 2)]]
    pred = [[("X", 0, 2), ("Y", 3, 5)], [("X", 1, 2), ("X", 3, 4)]]
    s = span_scores(gold, pred)
    # 2 of 4 predicted spans are right, 2 of 3 gold spans are found
    assert s["span_precision"] == pytest.approx(0.5)
    assert s["span_recall"] == pytest.approx(2 / 3)
    assert s["span_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s["f1_X"] == pytest.approx(0.8) and s["precision_X"] == pytest.approx(2 / 3)
    assert s["f1_Y"] == 0.0 and s["support_Y"] == 1.0
    assert span_scores([[]], [[]])["span_f1"] == 0.0


# ---------------------------------------------------------------- CRF
@torch.no_grad()
def _path_score(crf: CRF, em: torch.Tensor, path: tuple[int, ...], decoding: bool) -> float:
    trans, start, end = crf._scores(decoding)
    s = start[path[0]] + em[0, path[0]]
    for i in range(1, len(path)):
        s = s + trans[path[i - 1], path[i]] + em[i, path[i]]
    return float(s + end[path[-1]])


@pytest.mark.parametrize("scheme", [None, "bio", "bioes"])
def test_crf_likelihood_and_viterbi_equal_brute_force_on_tiny_sequences(scheme):
    torch.manual_seed(0)
    if scheme is None:
        n_tags, constraints = 3, ()
    else:
        tags = scheme_tags(["X"], scheme)
        n_tags, constraints = len(tags), allowed_transitions(tags, scheme)
    crf = CRF(n_tags, *constraints)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    lengths = [4, 2, 1]
    em = torch.randn(len(lengths), 4, n_tags)
    mask = torch.tensor([[i < n for i in range(4)] for n in lengths])
    gold = torch.randint(0, n_tags, (len(lengths), 4))
    ll = crf.log_likelihood(em, gold, mask).detach()
    decoded = crf.decode(em, mask)
    for row, n in enumerate(lengths):
        paths = list(itertools.product(range(n_tags), repeat=n))
        scores = torch.tensor([_path_score(crf, em[row, :n], p, decoding=False) for p in paths])
        log_z = torch.logsumexp(scores, 0)
        assert float(ll[row]) == pytest.approx(_path_score(crf, em[row, :n], tuple(gold[row, :n].tolist()), False)
                                                - float(log_z), rel=1e-6, abs=1e-4)
        best = max(paths, key=lambda p: _path_score(crf, em[row, :n], p, decoding=True))
        assert tuple(decoded[row, :n].tolist()) == best
        assert (decoded[row, n:] == -1).all()


@pytest.mark.parametrize("scheme", ["bio", "bioes"])
def test_crf_decoding_never_yields_an_ill_formed_sequence(scheme):
    torch.manual_seed(1)
    tags = scheme_tags(["X", "Y"], scheme)
    crf = CRF(len(tags), *allowed_transitions(tags, scheme))
    decoded = crf.decode(torch.randn(200, 7, len(tags)) * 5, torch.ones(200, 7, dtype=torch.bool))
    for row in decoded.tolist():
        seq = [tags[i] for i in row]
        assert spans_to_tags(tags_to_spans(seq), len(seq), scheme) == seq  # well-formed: re-tagging changes nothing


# ---------------------------------------------------------------- readers
def test_conll_reader_reads_sentences_skips_docstart_and_names_bad_lines(tmp_path):
    folder = tmp_path / "ner"
    folder.mkdir()
    (folder / "train.txt").write_bytes("\ufeff-DOCSTART- O\r\n\r\nApple B-brand\r\nphone O\r\n\r\n\r\nred O\r\n"
                                       .encode("utf-8"))
    (folder / "dev.txt").write_text("Sony B-brand\nTV O\n", encoding="utf-8")
    df = read_table("conll", folder)
    assert df["tokens"].tolist() == [["Sony", "TV"], ["Apple", "phone"], ["red"]]
    assert df["split"].tolist() == ["valid", "train", "train"] and df["text"].iloc[1] == "Apple phone"
    (folder / "extra.txt").write_text("a O\n", encoding="utf-8")
    with pytest.raises(DataError, match="split_of"):
        read_table("conll", folder)
    assert set(read_table("conll", folder, {"split_of": {"extra": "test"}})["split"]) == {"train", "valid", "test"}
    (folder / "extra.txt").write_text("lonely\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"extra.txt:1: 'lonely' holds a token without a tag"):
        read_table("conll", folder, {"split_of": {"extra": "test"}})


@pytest.mark.realdata
def test_taobao_ner_and_queryner_read_in_their_own_formats(shared_data):
    df = read_table("taobao_ner", shared_data / "taobao_ecommerce_ner")
    assert len(df) == 6998 and df["split"].value_counts().to_dict() == {"train": 6000, "valid": 998}
    assert (df["tokens"].map(len) == df["tags"].map(len)).all()
    assert sum(t == "B-HPPX" for row in df["tags"] for t in row) > 3000
    assert any("\u3000" in row for row in df["tokens"])  # a full-width space is a token, tagged like any other
    q = read_table("queryner", shared_data / "queryner")
    assert len(q) == 7841 + 871 and q["tags"].iloc[0][0] == "B-core_product_type"


# ---------------------------------------------------------------- the task in a model
BRANDS = ["acme", "zento", "morvi", "kalda"]
PRODUCTS = ["kettle", "toaster", "blender", "mixer"]


def titles_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Mechanics only: titles whose brand (a span of one or two tokens) and product word are taggable, and whose
    category follows from the product word."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        brand = BRANDS[rng.integers(4)]
        brand_tokens = [brand, "pro"] if rng.random() < 0.3 else [brand]
        product = PRODUCTS[rng.integers(4)]
        filler = ["new", "2024", "sale", "black", "steel"]
        head = list(rng.choice(filler, rng.integers(0, 3)))
        tokens = head + brand_tokens + [product] + list(rng.choice(filler, rng.integers(0, 3)))
        tags = (["O"] * len(head) + ["B-brand"] + ["I-brand"] * (len(brand_tokens) - 1) + ["B-product"]
                + ["O"] * (len(tokens) - len(head) - len(brand_tokens) - 1))
        rows.append({"tokens": tokens, "tags": tags, "title": " ".join(tokens),
                     "category": "cooking" if product in ("kettle", "toaster") else "mixing"})
    return pd.DataFrame(rows)


def titles_config(tmp_path, **model) -> dict:
    return {
        "name": "titles", "output_dir": str(tmp_path / "runs"),
        "data": {"source": {"format": "csv", "path": "unused.csv"}, "split": {"by": "random", "valid": 0.2, "test": 0.2}},
        "features": {"title": {"type": "text", "column": "tokens", "max_len": 12, "min_count": 1}},
        "tasks": {"brand": {"type": "tagging", "text": "title", "column": "tags", "types": ["brand"]},
                  "product": {"type": "tagging", "text": "title", "column": "tags", "types": ["product"],
                              "scheme": "bio"},
                  "category": {"type": "multiclass"}},
        "model": {"architecture": "shared_bottom", "bottom_layers": [16], "tower_layers": [8],
                  "text": {"encoder": "bilstm", "embed_dim": 16, "hidden": 16}, **model},
        "train": {"epochs": 8, "batch_size": 32, "lr": 0.02, "progress": False, "early_stopping": None},
    }


def test_tagging_and_classification_heads_learn_from_one_shared_encoder(tmp_path):
    cfg = config_from_dict(titles_config(tmp_path))
    run = Experiment(cfg).fit(data=titles_frame())
    test = run.metrics["test"]
    assert test["brand"]["span_f1"] > 0.9 and test["product"]["span_f1"] > 0.9, test
    assert test["category"]["accuracy"] > 0.9
    # one text encoder serves all three heads
    encoders = [m for m in run.model.modules() if type(m).__name__ == "TextEncoder"]
    assert len(encoders) == 1

    # predictions on raw titles come back as spans with their text and character offsets
    pred = run.predict(pd.DataFrame({"tokens": ["Zento Pro kettle on sale", "new MORVI toaster"]}))
    assert pred["brand"].iloc[0] == {"brand": [("Zento Pro", 0, 9)]}
    assert pred["brand"].iloc[1] == {"brand": [("MORVI", 4, 9)]}
    assert pred["product"].iloc[1] == {"product": [("toaster", 10, 17)]}
    # token lists give token positions
    assert run.predict(pd.DataFrame({"tokens": [["acme", "mixer"]]}))["brand"].iloc[0] == {"brand": [("acme", 0, 1)]}

    # the run folder reloads and scores the same
    loaded = Run.load(run.path)
    again = loaded.evaluate(titles_frame(60, seed=3))
    assert again["brand"]["span_f1"] > 0.9


@pytest.mark.parametrize("architecture", ["single", "mmoe", "cross_stitch", "adversarial"])
def test_tagging_heads_work_on_every_kind_of_architecture(tmp_path, architecture):
    raw = titles_config(tmp_path, architecture=architecture)
    raw["train"]["epochs"] = 2
    run = Experiment(config_from_dict(raw)).fit(data=titles_frame(160), save=False)
    assert np.isfinite(run.metrics["test"]["brand"]["span_f1"])


@pytest.mark.parametrize("method", ["pcgrad", "mgda"])
def test_gradient_balancers_take_parameter_gradients_when_a_head_reads_tokens(tmp_path, method):
    raw = titles_config(tmp_path)
    raw["balance"] = {"method": method}
    raw["train"]["epochs"] = 1
    exp = Experiment(config_from_dict(raw))
    run = exp.fit(data=titles_frame(120), save=False)
    assert np.isfinite(run.metrics["test"]["product"]["span_f1"])


def test_the_transformer_encoder_trains_a_tagging_task(tmp_path):
    raw = titles_config(tmp_path, text={"encoder": "transformer", "embed_dim": 16, "heads": 2, "layers": 1})
    raw["train"]["epochs"] = 12
    run = Experiment(config_from_dict(raw)).fit(data=titles_frame(), save=False)
    assert run.metrics["test"]["brand"]["span_f1"] > 0.8, run.metrics["test"]


def test_tagging_without_crf_uses_a_per_token_softmax(tmp_path):
    raw = titles_config(tmp_path)
    raw["tasks"]["brand"]["crf"] = False
    run = Experiment(config_from_dict(raw)).fit(data=titles_frame(), save=False)
    assert run.model.heads["brand"].crf is None
    assert run.metrics["test"]["brand"]["span_f1"] > 0.8


def test_tagging_config_and_data_errors_name_the_fix(tmp_path):
    raw = titles_config(tmp_path)
    raw["tasks"]["brand"]["text"] = "titel"
    with pytest.raises(ConfigError, match="tasks.brand.text: unknown feature `titel`; did you mean `title`"):
        config_from_dict(raw)
    raw = titles_config(tmp_path)
    raw["features"]["price"] = {"type": "numeric"}
    raw["tasks"]["brand"]["text"] = "price"
    with pytest.raises(ConfigError, match="a tagging task tags the tokens of a `type: text` feature"):
        config_from_dict(raw)
    raw = titles_config(tmp_path, text={"encoder": "transformer", "embed_dim": 10, "heads": 4})
    with pytest.raises(ConfigError, match="heads"):
        config_from_dict(raw)

    df = titles_frame(50)
    df.at[7, "tags"] = df.at[7, "tags"][:-1]
    with pytest.raises(DataError, match=r"row 7 has \d+ tags in `tags` but \d+ tokens in `tokens`"):
        Experiment(config_from_dict(titles_config(tmp_path))).fit(data=df, save=False)
    df = titles_frame(50)
    df.at[3, "tags"] = ["brand"] * len(df.at[3, "tokens"])
    with pytest.raises(DataError, match="row 3: tag 'brand' is neither"):
        Experiment(config_from_dict(titles_config(tmp_path))).fit(data=df, save=False)
    raw = titles_config(tmp_path)
    raw["tasks"]["brand"]["types"] = ["colour"]
    with pytest.raises(DataError, match=r"tasks.brand.types: \['colour'\] never occur"):
        Experiment(config_from_dict(raw)).fit(data=titles_frame(50), save=False)


def test_predict_file_writes_spans_as_json(tmp_path):
    raw = titles_config(tmp_path)
    raw["train"]["epochs"] = 1
    raw["data"]["source"] = {"format": "parquet", "path": str(tmp_path / "titles.parquet")}
    titles_frame(80).to_parquet(tmp_path / "titles.parquet")
    config = tmp_path / "titles.yaml"
    config.write_text(yaml.safe_dump(raw))
    run = Experiment.from_yaml(config).fit()
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run.path), str(tmp_path / "titles.parquet"), "-o", str(out)]) == 0
    spans = json.loads(pd.read_csv(out)["brand"].iloc[0])
    assert set(spans) == {"brand"} and all(len(s) == 3 for s in spans["brand"])


# ---------------------------------------------------------------- the pretrained encoder
@pytest.fixture
def no_network(monkeypatch):
    """Every connection attempt fails, as on a machine where no model hub can be reached."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    from shopmtl.features import pretrained

    pretrained.load_tokenizer.cache_clear()


def test_the_pretrained_encoder_loads_offline_frozen_with_its_own_tokenizer(tmp_path, no_network):
    from shopmtl.features.pretrained import load_model

    raw = titles_config(tmp_path, text={"encoder": "pretrained"})
    raw["train"]["epochs"] = 2
    run = Experiment(config_from_dict(raw)).fit(data=titles_frame(120))
    [encoder] = [m for m in run.model.modules() if type(m).__name__ == "PretrainedTextEncoder"]
    assert encoder.out_dim == 384 and not any(p.requires_grad for p in encoder.parameters())
    fresh = dict(load_model("all-MiniLM-L6-v2").named_parameters())
    for name, p in encoder.model.named_parameters():  # frozen: training left the weights as shipped
        assert torch.equal(p, fresh[name]), name
    # word pieces: "blender" is one token of the feature, whatever pieces the tokenizer makes of it
    from shopmtl.features.pretrained import load_tokenizer

    zento = load_tokenizer("all-MiniLM-L6-v2")("zento", add_special_tokens=False)["input_ids"]
    features = run.preprocessor.transform(pd.DataFrame({"tokens": [["zento", "blender"]]}))
    assert len(zento) > 1  # an unknown brand becomes several pieces ...
    assert features["title@first"][0, :3].tolist() == [1, 1 + len(zento), 0]  # ... and stays one token
    assert features["title"][0, 1: 1 + len(zento)].tolist() == zento
    loaded = Run.load(run.path)
    assert set(loaded.predict(pd.DataFrame({"tokens": ["acme kettle"]}))) >= {"brand", "product", "category"}


def test_a_fine_tuned_pretrained_encoder_changes_its_weights(tmp_path, no_network):
    raw = titles_config(tmp_path, text={"encoder": "pretrained", "finetune": True})
    raw["train"]["epochs"] = 1
    run = Experiment(config_from_dict(raw)).fit(data=titles_frame(64), save=False)
    [encoder] = [m for m in run.model.modules() if type(m).__name__ == "PretrainedTextEncoder"]
    from shopmtl.features.pretrained import load_model

    fresh = dict(load_model("all-MiniLM-L6-v2").named_parameters())
    changed = [n for n, p in encoder.model.named_parameters() if not torch.equal(p, fresh[n])]
    assert len(changed) > 50


def test_an_unknown_pretrained_model_is_a_config_error(tmp_path):
    raw = titles_config(tmp_path, text={"encoder": "pretrained", "pretrained": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="model.text.pretrained: .* neither all-MiniLM-L6-v2 nor a local folder"):
        Experiment(config_from_dict(raw)).fit(data=titles_frame(40), save=False)


def test_spans_can_be_derived_from_an_attribute_value_that_the_title_contains(tmp_path):
    df = titles_frame(300)
    df["brand_name"] = [" ".join(t for t, g in zip(tok, tags, strict=True) if g != "O" and g.endswith("brand"))
                        for tok, tags in zip(df["tokens"], df["tags"], strict=True)]
    df.loc[0, "brand_name"] = "unknown maker"  # named nowhere in its title: a row without a span
    df.loc[1, "brand_name"] = None  # no value: unlabelled
    raw = titles_config(tmp_path)
    raw["tasks"] = {"brand": {"type": "tagging", "text": "title", "column": "brand_name", "labels": "value"},
                    "category": {"type": "multiclass"}}
    config = config_from_dict(raw)
    from shopmtl.run import build_tasks

    task = build_tasks(config)["brand"]
    derived = task.label_values(df.iloc[:3])
    assert derived.iloc[0] == ["O"] * len(df.at[0, "tokens"]) and derived.iloc[1] is None
    assert tags_to_spans(derived.iloc[2]) == [("brand_name", *tags_to_spans(df.at[2, "tags"])[0][1:])]
    run = Experiment(config).fit(data=df, save=False)
    assert run.metrics["test"]["brand"]["span_f1"] > 0.85, run.metrics["test"]
    assert run.tasks["brand"].types == ["brand_name"]
    raw["tasks"]["brand"]["types"] = ["a", "b"]
    with pytest.raises(ConfigError, match="labels: value tags one span type"):
        config_from_dict(raw)


def test_the_tagging_loss_is_per_row_by_default_and_per_token_on_request(tmp_path):
    from shopmtl.run import build_tasks

    raw = titles_config(tmp_path)
    df = titles_frame(40)
    losses = {}
    for per in ("row", "token"):
        raw["tasks"]["brand"]["loss_per"] = per
        config = config_from_dict(raw)
        task = build_tasks(config)["brand"]
        task.fit(df["tags"])
        torch.manual_seed(0)
        task.head(4, seq_dim=6)
        target, mask = task.encode(df["tags"])
        lengths = torch.tensor(df["tokens"].map(len).tolist())
        tokens = torch.arange(12).unsqueeze(0) < lengths.unsqueeze(1)
        torch.manual_seed(1)
        emissions = torch.randn(len(df), 12, task.n_outputs)
        output = torch.cat([emissions, tokens.unsqueeze(-1).float()], dim=-1)
        losses[per] = float(task.loss(output, torch.from_numpy(target), torch.from_numpy(mask)))
    assert losses["row"] / losses["token"] == pytest.approx(float(lengths.float().mean()), rel=1e-4)


def test_text_features_share_one_pretrained_model(tmp_path, no_network):
    raw = titles_config(tmp_path, text={"encoder": "pretrained"})
    raw["features"]["again"] = {"type": "text", "column": "title", "max_len": 12}
    raw["tasks"] = {"category": {"type": "multiclass"}}
    raw["train"]["epochs"] = 1
    run = Experiment(config_from_dict(raw)).fit(data=titles_frame(60))
    encoders = {id(m) for m in run.model.modules() if type(m).__name__ == "PretrainedTextEncoder"}
    assert len(encoders) == 1
    assert (run.path / "model.pt").stat().st_size < 120e6  # its weights are saved once (~90 MB)
    assert Run.load(run.path).predict(titles_frame(5))["category"].notna().all()


def test_window_features_put_the_feature_crf_inside_the_neural_tagger(tmp_path):
    raw = titles_config(tmp_path)
    raw["tasks"]["brand"]["window_features"] = True
    raw["train"]["epochs"] = 4
    run = Experiment(config_from_dict(raw)).fit(data=titles_frame(), save=False)
    window = run.model.heads["brand"].window
    assert window is not None and run.model.heads["product"].window is None
    assert window.unigrams.weight.abs().sum() > 0  # the window weights trained
    assert run.metrics["test"]["brand"]["span_f1"] > 0.9
    loaded = Run.load(Experiment(config_from_dict(raw)).fit(data=titles_frame(120)).path)
    assert loaded.model.heads["brand"].window is not None


def test_window_features_read_first_pieces_under_a_pretrained_encoder(tmp_path, no_network):
    raw = titles_config(tmp_path, text={"encoder": "pretrained", "lr": 5e-5, "finetune": True})
    raw["tasks"]["brand"]["window_features"] = True
    raw["train"].update(epochs=1, warmup=0.5, schedule="linear")
    run = Experiment(config_from_dict(raw)).fit(data=titles_frame(64), save=False)
    from shopmtl.model import token_ids

    features = run.preprocessor.transform(pd.DataFrame({"tokens": [["zento", "blender"]]}))
    ids = token_ids({k: torch.from_numpy(v) for k, v in features.items()}, "title")
    assert ids[0, 0] == features["title"][0, 1] and ids[0, 2] == 0  # each token's first piece; none past the row
    assert np.isfinite(run.metrics["test"]["brand"]["span_f1"])


def _noisy_titles(n: int, seed: int) -> pd.DataFrame:
    """Titles whose brand is not always recognisable from the token alone: some brand words also occur as
    ordinary words, so the window (neighbours, shape) matters and no fit reaches F1 = 1."""
    rng = np.random.default_rng(seed)
    brands, words = [f"b{i}" for i in range(30)], [f"w{i}" for i in range(60)]
    rows = []
    for _ in range(n):
        left = list(rng.choice(words + brands[:10], rng.integers(0, 4)))  # b0 … b9 also appear as plain words
        brand = [str(rng.choice(brands))] + (["pro"] if rng.random() < 0.3 else [])
        right = list(rng.choice(words, rng.integers(1, 4)))
        marker = ["by"] if rng.random() < 0.5 else []
        tokens = left + marker + brand + right
        tags = ["O"] * (len(left) + len(marker)) + ["B-brand"] + ["I-brand"] * (len(brand) - 1) + ["O"] * len(right)
        rows.append({"tokens": tokens, "tags": tags})
    return pd.DataFrame(rows)


def test_tagger_fitted_first_starts_as_its_feature_crf_and_fits_as_crfsuite_does(tmp_path):
    import sklearn_crfsuite

    from shopmtl.data.batching import encode
    from shopmtl.data.preprocess import Preprocessor
    from shopmtl.features.windows import crf_features
    from shopmtl.model import MultiTaskModel
    from shopmtl.training.evaluate import evaluate
    from shopmtl.training.wide import pretrain

    raw = titles_config(tmp_path)
    raw["tasks"] = {"brand": {"type": "tagging", "text": "title", "column": "tags", "types": ["brand"],
                              "window_features": True}}
    raw["model"]["wide"] = {"pretrain": {"solver": "lbfgs", "C": [0.3, 3.0, 30.0], "max_iter": 100}}
    cfg = config_from_dict(raw)
    frames, tasks = Experiment(cfg).prepare(_noisy_titles(700, 0))
    pre = Preprocessor(cfg).fit(frames["train"])
    enc = {s: encode(frames[s], pre, tasks) for s in ("train", "valid", "test")}
    model = MultiTaskModel(cfg, pre, tasks)
    record = pretrain(model, cfg, pre, tasks, enc["train"], enc["valid"], np.random.default_rng(0),
                      torch.device("cpu"), tmp_path / "cache")
    head = model.heads["brand"]
    assert head.emit.weight.abs().sum() == 0 and head.window.unigrams.weight.abs().sum() > 0
    chosen, scores = record["C"]["brand"], record["valid_by_C"]["brand"]
    assert scores[f"{chosen:.4g}"] == max(scores.values())
    # the started model *is* the feature CRF: its validation span F1 is the fit's, whatever the BiLSTM holds
    valid, _ = evaluate(model, tasks, enc["valid"], 256, torch.device("cpu"))
    assert valid["brand"]["span_f1"] == pytest.approx(scores[f"{chosen:.4g}"])
    ours, _ = evaluate(model, tasks, enc["test"], 256, torch.device("cpu"))
    # the same template and L2 (crfsuite's c2 = 1 / (2C), no L1) in crfsuite reaches about the same test F1
    task = tasks["brand"]
    rows = frames["train"]["tokens"].tolist()
    reference = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.0, c2=1 / (2 * chosen), max_iterations=100,
                                     all_possible_transitions=True)
    reference.fit([crf_features(t) for t in rows], frames["train"]["tags"].tolist())
    pred = np.full((len(frames["test"]), task.width), -1, dtype=np.int64)
    for i, seq in enumerate(reference.predict([crf_features(t) for t in frames["test"]["tokens"]])):
        pred[i, : len(seq)] = [task.tag_index[t] for t in seq[: task.width]]
    target, _ = task.encode(frames["test"]["tags"])
    theirs = task.metrics(target, pred)["span_f1"]
    assert 0.5 < theirs < 0.99 and abs(ours["brand"]["span_f1"] - theirs) < 0.03, (ours["brand"], theirs)


@pytest.mark.parametrize("architecture", ["shared_bottom", "soft"])
def test_a_tagger_the_deep_path_does_not_help_keeps_its_feature_crf(tmp_path, architecture):
    raw = titles_config(tmp_path, architecture=architecture)
    raw["tasks"] = {"brand": {"type": "tagging", "text": "title", "column": "tags", "types": ["brand"],
                              "window_features": True}}
    raw["model"]["wide"] = {"pretrain": {"solver": "lbfgs", "C": [1.0, 10.0], "max_iter": 60, "refine": 0}}
    # a learning rate that wrecks whatever it trains: the feature CRF it started from must come back
    raw["train"].update(epochs=2, lr=5.0, early_stopping={"patience": 2, "monitor": "valid.primary"})
    run = Experiment(config_from_dict(raw)).fit(data=_noisy_titles(400, 1), save=False)
    record = run.metrics["wide_pretrain"]
    assert record["wide_only"] == ["brand"]
    assert run.metrics["valid"]["brand"]["span_f1"] == pytest.approx(record["valid"]["brand"]["span_f1"])
    assert run.model.heads["brand"].emit.weight.abs().sum() == 0
