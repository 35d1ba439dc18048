"""Preprocessing fitted on training rows only; tokenisation of English and Chinese; splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopmtl.config import SplitConfig, load_config
from shopmtl.data.preprocess import OOV, PAD, Preprocessor
from shopmtl.data.splits import assign_splits
from shopmtl.data.text import tokenize
from shopmtl.errors import DataError

from .conftest import synthetic_frame


def test_tokenizer_splits_english_words_and_chinese_characters():
    assert tokenize("Love it! 好看又便宜 size M") == ["love", "it", "!", "好", "看", "又", "便", "宜", "size", "m"]
    assert tokenize("ABC", "chars", lowercase=False) == ["A", "B", "C"]
    assert tokenize(None) == []


def test_vocabulary_comes_from_training_rows_only(synthetic_yaml):
    cfg = load_config(synthetic_yaml)
    train = pd.DataFrame({"colour": ["red", "red", "blue"], "size": [1.0, 3.0, np.nan],
                          "text": ["a b", "b c", None]})
    pre = Preprocessor(cfg).fit(train)
    out = pre.transform(pd.DataFrame({"colour": ["blue", "purple", None], "size": [2.0, np.nan, 5.0],
                                      "text": ["b zzz", "", "a"]}))
    colour = out["colour"]
    assert colour[0] >= 2 and colour[1] == OOV and colour[2] == PAD  # purple unseen → OOV; missing → PAD
    # numeric: standardised with the training mean 2 and std 1, missing → 0 with a flag
    np.testing.assert_allclose(out["size"][:, 0], [0.0, 0.0, 3.0])
    np.testing.assert_allclose(out["size"][:, 1], [0.0, 1.0, 0.0])
    assert out["text"][0][1] == OOV and out["text"][1].sum() == 0


def test_numeric_feature_with_text_values_names_the_column_and_row(synthetic_yaml):
    cfg = load_config(synthetic_yaml)
    frame = synthetic_frame(20)
    frame["size"] = frame["size"].astype(object)
    frame.loc[5, "size"] = "large"
    with pytest.raises(DataError, match=r"numeric feature column `size`: row 5 holds 'large'"):
        Preprocessor(cfg).fit(frame)


def test_preprocessor_state_round_trips(synthetic_yaml):
    cfg = load_config(synthetic_yaml)
    df = synthetic_frame(50)
    pre = Preprocessor(cfg).fit(df)
    again = Preprocessor.from_state(cfg, pre.state_dict())
    a, b = pre.transform(df), again.transform(df)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_random_split_is_seeded_and_independent_of_row_order():
    df = synthetic_frame(500)
    cfg = SplitConfig(by="random", valid=0.2, test=0.2, seed=3)
    first = pd.Series(assign_splits(df, cfg), index=df.index)
    shuffled = df.sample(frac=1.0, random_state=0)
    second = pd.Series(assign_splits(shuffled, cfg), index=shuffled.index)
    assert (first == second.loc[first.index]).all()
    assert 0.12 < (first == "test").mean() < 0.28
    other_seed = assign_splits(df, SplitConfig(by="random", valid=0.2, test=0.2, seed=4))
    assert (other_seed != first.to_numpy()).any()


def test_time_split_puts_the_last_units_in_test_and_the_one_before_in_valid():
    df = pd.DataFrame({"day": np.repeat([1, 2, 3, 4, 5], 10)})
    split = assign_splits(df, SplitConfig(by="time", column="day", test=2, valid=1))
    assert set(df.day[split == "test"]) == {4, 5}
    assert set(df.day[split == "valid"]) == {3}
    assert set(df.day[split == "train"]) == {1, 2}
    with pytest.raises(DataError, match="cannot hold"):
        assign_splits(df, SplitConfig(by="time", column="day", test=3, valid=2))


def test_group_split_keeps_each_group_in_one_split():
    df = pd.DataFrame({"user": np.repeat(np.arange(100), 5)})
    split = assign_splits(df, SplitConfig(by="group", column="user", valid=0.2, test=0.2))
    assert (pd.Series(split).groupby(df["user"]).nunique() == 1).all()


def test_split_from_a_column_and_bad_values():
    df = pd.DataFrame({"s": ["train", "train", "validation", "test"]})
    assert list(assign_splits(df, SplitConfig(by="column", column="s"))) == ["train", "train", "valid", "test"]
    with pytest.raises(DataError, match="values must be train/valid/test"):
        assign_splits(pd.DataFrame({"s": ["train", "dev"]}), SplitConfig(by="column", column="s"))
