"""Training mechanics: the optimiser's groups and schedule, batches grouped by length, inference in length order
with row order restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shopmtl.config import ModelConfig, TrainConfig, config_from_dict
from shopmtl.data.batching import Encoded, batch_order, inference_order, text_lengths
from shopmtl.experiment import Experiment
from shopmtl.training.evaluate import in_row_order, predict
from shopmtl.training.optim import Optimizer

from .conftest import synthetic_frame


def _encoded(lengths: list[int]) -> Encoded:
    ids = np.zeros((len(lengths), max(lengths)), dtype=np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = 5
    return Encoded({"text": ids, "num": np.zeros((len(lengths), 2), np.float32)}, text=["text"])


def test_length_buckets_cover_every_row_once_and_group_like_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, 1000)
    order = batch_order(1000, 20, np.random.default_rng(1), lengths, chunk=10)
    rows = np.concatenate(order)
    assert sorted(rows.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in order])
    shuffled = batch_order(1000, 20, np.random.default_rng(1))
    assert spread < 0.3 * np.mean([np.ptp(lengths[b]) for b in shuffled])
    # without lengths, the order is the permutation the loop always used (seeded runs are unchanged)
    assert np.array_equal(np.concatenate(shuffled), np.random.default_rng(1).permutation(1000))


def test_inference_runs_in_length_order_and_gives_rows_back_in_their_order():
    enc = _encoded([5, 1, 3, 2, 4])
    assert text_lengths(enc).tolist() == [5, 1, 3, 2, 4]
    order = inference_order(enc, 2)
    assert np.concatenate(order).tolist() == [1, 3, 2, 4, 0]
    parts = [np.array([10.0, 30.0]), np.array([20.0, 40.0]), np.array([0.0])]
    assert in_row_order(parts, order).tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]


def test_predictions_do_not_depend_on_the_batching(tmp_path):
    raw = {"name": "s", "data": {"source": {"format": "csv", "path": "x"}, "split": {"valid": 0.2, "test": 0.2}},
           "features": {"text": {"type": "text", "min_count": 1}, "size": {"type": "numeric"}},
           "tasks": {"liked": {"type": "binary"}, "kind": {"type": "multiclass"}},
           "model": {"bottom_layers": [8], "tower_layers": [4], "text": {"encoder": "bilstm", "embed_dim": 8,
                                                                         "hidden": 8}},
           "train": {"epochs": 1, "progress": False}, "report": {"explain_rows": 0}}
    df = synthetic_frame(300)
    df["text"] = [" ".join(["w"] * (i % 9 + 1)) + f" {t}" for i, t in enumerate(df["text"])]  # lengths vary
    run = Experiment(config_from_dict(raw)).fit(save=False, data=df)
    from shopmtl.data.batching import encode

    enc = encode(df, run.preprocessor, run.tasks, with_labels=False)
    together = predict(run.model, run.tasks, enc, 4096, torch.device("cpu"))
    one_by_one = predict(run.model, run.tasks, enc, 1, torch.device("cpu"))
    for task in run.tasks:
        assert np.allclose(together[task], one_by_one[task], atol=1e-5)


def test_warmup_then_decay_scales_every_group():
    model = torch.nn.Linear(3, 1)
    opt = Optimizer(model, [], TrainConfig(lr=0.1, warmup=4, schedule="linear"), ModelConfig(), total_steps=14)
    seen = []
    for _ in range(14):
        seen.append(opt.param_groups[0]["lr"])
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
        opt.zero_grad()
    assert seen[:4] == pytest.approx([0.02, 0.04, 0.06, 0.08])
    assert seen[4] == pytest.approx(0.1) and seen[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(seen[4:], seen[5:], strict=False))
    cosine = Optimizer(model, [], TrainConfig(lr=1.0, schedule="cosine"), ModelConfig(), total_steps=10)
    assert cosine.factor(0) == 1.0 and cosine.factor(5) == pytest.approx(0.5) and cosine.factor(10) == 0.0
    # a fraction below 1 is a share of all steps
    assert Optimizer(model, [], TrainConfig(lr=1.0, warmup=0.25), ModelConfig(), total_steps=40).warmup == 10


def test_the_wide_tables_step_sparsely_with_lazy_weight_decay():
    from shopmtl.features.sparse import WideTerm

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wide = torch.nn.ModuleDict({"t": WideTerm({"g": 6}, 1)})
            self.other = torch.nn.Linear(2, 1)

    model = Model()
    with torch.no_grad():
        model.wide["t"].table.weight.fill_(1.0)
    cfg = config_from_dict({"name": "x", "data": {"source": {"format": "csv"}},
                            "features": {"g": {"type": "sparse", "column": "t"}},
                            "tasks": {"t": {"type": "binary"}}, "model": {"wide": {"weight_decay": 0.5, "lr": 0.1}}})
    opt = Optimizer(model, [], cfg.train, cfg.model, total_steps=10)
    assert opt.sparse is not None and all(p is not model.wide["t"].table.weight for p in opt.dense_parameters())
    out = model.wide["t"]({"g": torch.tensor([[1, 2]]), "g@w": torch.tensor([[1.0, 1.0]])})
    out.sum().backward()
    assert model.wide["t"].table.weight.grad.is_sparse
    opt.step()
    w = model.wide["t"].table.weight.detach()
    assert torch.all(w[[0, 3, 4, 5]] == 1.0)  # rows no token touched: neither stepped nor decayed
    assert torch.all(w[[1, 2]] < 1.0 - 0.1 * 0.5 * 0.99)  # stepped by Adam and decayed by lr · weight_decay
