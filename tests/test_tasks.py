"""Task types: label encoding with masks, losses, metrics against hand computations, decoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from shopmtl.config import BinaryTask, MulticlassTask, MultilabelTask, RegressionTask
from shopmtl.errors import DataError
from shopmtl.tasks import build_task
from shopmtl.tasks.binary import gauc


def test_missing_label_is_masked_not_dropped():
    task = build_task("liked", BinaryTask(type="binary"), "liked")
    target, mask = task.encode(pd.Series([1, None, 0, 1]))
    assert len(target) == 4 and list(mask) == [True, False, True, True]
    out = torch.tensor([[10.0], [-50.0], [-10.0], [10.0]])
    loss = task.loss(out, torch.from_numpy(target), torch.from_numpy(mask))
    assert float(loss) < 1e-3  # the masked row's terrible logit does not count


def test_loss_of_a_batch_without_labels_is_zero_with_a_gradient():
    task = build_task("liked", BinaryTask(type="binary"), "liked")
    out = torch.zeros(3, 1, requires_grad=True)
    loss = task.loss(out, torch.zeros(3), torch.zeros(3, dtype=torch.bool))
    loss.backward()
    assert float(loss) == 0.0 and out.grad is not None


def test_binary_labels_other_than_zero_one_need_positive():
    task = build_task("fake", BinaryTask(type="binary"), "label")
    with pytest.raises(DataError, match=r"holds \['cg', 'or'\].*set tasks.fake.positive"):
        task.encode(pd.Series(["CG", "OR"]))
    task = build_task("fake", BinaryTask(type="binary", positive="CG"), "label")
    target, _ = task.encode(pd.Series(["CG", "OR", "CG"]))
    assert list(target) == [1.0, 0.0, 1.0]


def test_gauc_by_hand():
    # user a: AUC 1.0 over 4 rows; user b: AUC 0.5 over 2 rows... (1 pos, 1 neg, reversed → 0.0); user c one class
    y = np.array([1, 0, 1, 0, 1, 0, 1])
    s = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.7, 0.5])
    g = np.array(["a", "a", "a", "a", "b", "b", "c"])
    assert gauc(y, s, g) == pytest.approx((1.0 * 4 + 0.0 * 2) / 6)


def test_multiclass_encodes_unseen_classes_as_masked_and_reports_them():
    task = build_task("rating", MulticlassTask(type="multiclass"), "rating")
    task.fit(pd.Series([1, 2, 3, 3]))
    target, mask = task.encode(pd.Series([3.0, 7.0, None]))
    assert list(mask) == [True, False, False] and target[0] == 2
    assert task.unseen_labels(pd.Series([3, 7])) == ["7"]
    metrics = task.metrics(np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 1, 2]])
    assert metrics["accuracy"] == 0.75
    assert metrics["macro_f1"] == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]))
    decoded = task.decode(np.eye(3)[[2, 0]])
    assert list(decoded["rating"]) == ["3", "1"]


def test_multilabel_encoding_and_micro_f1():
    task = build_task("stages", MultilabelTask(type="multilabel"), "stages")
    task.fit(pd.Series(["1,4", "4,8", None]))
    target, mask = task.encode(pd.Series(["1,8", None, "4"]))
    assert task.labels == ["1", "4", "8"]
    np.testing.assert_array_equal(target, [[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    assert list(mask) == [True, False, True]
    pred = np.array([[0.9, 0.1, 0.2], [0.0, 0.0, 0.0], [0.2, 0.8, 0.9]])
    m = task.metrics(target[[0, 2]], pred[[0, 2]])
    assert m["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # tp 2, fp 1, fn 1
    assert task.decode(pred[[0, 2]])["stages"] == ["1", "4,8"]


def test_regression_standardises_and_decodes_back_to_original_units():
    task = build_task("price", RegressionTask(type="regression", transform="log1p"), "price")
    task.fit(pd.Series([0.0, np.e - 1, np.e**2 - 1]))
    target, mask = task.encode(pd.Series([np.e - 1, None]))
    assert target[0] == pytest.approx(0.0) and list(mask) == [True, False]
    pred = task.predict(torch.tensor([[0.0]]))
    assert pred[0] == pytest.approx(1.0)  # log1p scale
    assert task.decode(pred)["price"][0] == pytest.approx(np.e - 1)
    # metrics take standardised targets (0 → the training mean, 1 on the log1p scale) and scaled predictions
    m = task.metrics(np.array([0.0, 0.0]), np.array([3.0, 0.0]))
    assert m["rmse"] == pytest.approx(np.sqrt((2.0**2 + 1.0**2) / 2)) and m["mae"] == pytest.approx(1.5)
    with pytest.raises(DataError, match="log1p needs values ≥ 0"):
        task.fit(pd.Series([-3.0, 1.0]))


def test_relative_gain_is_sign_corrected_per_metric_direction():
    from shopmtl.analysis.compare import relative_gain

    assert relative_gain(0.8, 0.5, higher_is_better=True) == pytest.approx(60.0)  # AUC up is good
    assert relative_gain(0.8, 1.0, higher_is_better=False) == pytest.approx(20.0)  # RMSE down is good
    assert relative_gain(1.2, 1.0, higher_is_better=False) == pytest.approx(-20.0)
    assert np.isnan(relative_gain(0.5, 0.0, higher_is_better=True))
