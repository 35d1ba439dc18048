"""Readers for every format in ../shared/data: columns, row counts, quirks, and leak-free history features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopmtl.data import taobao
from shopmtl.data.readers import READERS, iter_table, read_table
from shopmtl.errors import DataError


@pytest.mark.parametrize("fmt, rows, columns", [
    ("bigbasket_products", 16003, ["product", "category", "sub_category", "type", "brand", "sale_price", "discount"]),
    ("amazon_uk_toys", 7989, ["product_name", "category_1", "category_2", "manufacturer", "price", "average_rating"]),
    ("book30", 4565, ["title", "author", "category"]),
    ("womens_clothing_reviews", 23486, ["review_text", "rating", "recommended", "department_name"]),
    ("online_shopping_10_cats", 50092, ["cat", "label", "review"]),
])
def test_catalogue_and_review_readers_keep_every_row(shared_data, fmt, rows, columns):
    df = read_table(fmt, shared_data / READERS.get(fmt).folder)
    assert len(df) == rows
    assert set(columns) <= set(df.columns)


def test_reader_quirks_are_cleaned(shared_data):
    bb = read_table("bigbasket_products", shared_data / "bigbasket_products")
    assert not bb["brand"].dropna().str.endswith(" ").any()  # stray spaces stripped
    assert (bb["rating"].dropna() > 0).all()  # 0.0 means unknown → NaN
    toys = read_table("amazon_uk_toys", shared_data / "amazon_uk_toys")
    assert toys["category_1"].notna().mean() > 0.9
    assert pd.api.types.is_float_dtype(toys["average_rating"]) and toys["average_rating"].max() <= 5
    shop = read_table("online_shopping_10_cats", shared_data / "online_shopping_10_cats")
    assert not shop["review"].dropna().str.startswith("\ufeff").any()  # the BOM of the first review is gone
    assert shop["cat"].nunique() == 10


def test_generic_csv_reader_streams_in_chunks(shared_data):
    path = shared_data / "mtl_benchmark_samples" / "ali_ccp_train_sample.csv"
    whole = read_table("csv", path)
    chunks = list(iter_table("csv", path, chunksize=7))
    assert len(chunks) > 1 and sum(map(len, chunks)) == len(whole)


def test_cikm_samples_are_one_per_user_item_day_with_labels(shared_data):
    df = read_table("taobao_ecomm_cikm2019", shared_data / "taobao_ecomm_cikm2019")
    assert not df.duplicated(["user_id", "item_id", "date"]).any()
    assert set(df["date"].unique()) == set(range(20190610, 20190620))
    for label in ("click", "fav", "cart", "buy"):
        assert set(df[label].unique()) <= {0, 1}
    assert 0.9 < df["click"].mean() < 0.97 and 0.05 < df["buy"].mean() < 0.2
    assert df["price"].notna().mean() > 0.99 and df["gender"].notna().mean() > 0.5


def test_cikm_history_counts_only_earlier_days(shared_data):
    """Recompute the history of a sample of rows from the raw log: only events on earlier days may count."""
    df = read_table("taobao_ecomm_cikm2019", shared_data / "taobao_ecomm_cikm2019")
    raw = pd.read_csv(shared_data / "taobao_ecomm_cikm2019" / "ecomm_edge_train.txt", sep="\t", header=None,
                      names=["user_id", "item_id", "behavior", "date"]).drop_duplicates()
    sample = df.sample(300, random_state=1)
    for row in sample.itertuples():
        past = raw[(raw.user_id == row.user_id) & (raw.date < row.date)]
        assert row.user_prior_clicks == (past.behavior == 1).sum()
        assert row.user_prior_buys == (past.behavior == 4).sum()
        same_item = past[past.item_id == row.item_id]
        assert row.user_item_prior_carts == (same_item.behavior == 3).sum()
        item_past = raw[(raw.item_id == row.item_id) & (raw.date < row.date)]
        assert row.item_prior_clicks == (item_past.behavior == 1).sum()
    first_day = df[df["date"] == df["date"].min()]
    history = [c for c in df.columns if "_prior_" in c]
    assert (first_day[history] == 0).all().all()  # nothing before the first day


def test_cikm_history_ignores_the_future(shared_data, tmp_path):
    """Deleting every event after a day leaves that day's samples (features and labels) unchanged."""
    src = shared_data / "taobao_ecomm_cikm2019"
    cut = tmp_path / "cut"
    cut.mkdir()
    edges = pd.read_csv(src / "ecomm_edge_train.txt", sep="\t", header=None)
    edges[edges[3] <= 20190614].to_csv(cut / "ecomm_edge_train.txt", sep="\t", header=False, index=False)
    for name in ("ecomm_item_feature.txt", "ecomm_user_feature.txt"):
        (cut / name).write_bytes((src / name).read_bytes())
    full = read_table("taobao_ecomm_cikm2019", src)
    part = read_table("taobao_ecomm_cikm2019", cut)
    keys = ["user_id", "item_id", "date"]
    day = full[full["date"] == 20190614].sort_values(keys).reset_index(drop=True)
    same = part[part["date"] == 20190614].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(day, same[day.columns])


def test_cikm_user_level_has_profile_labels_and_behaviour_features(shared_data):
    df = read_table("taobao_ecomm_cikm2019", shared_data / "taobao_ecomm_cikm2019", {"level": "user"})
    assert df["user_id"].is_unique and len(df) > 1000
    assert {"n_click", "n_buy", "top_categories", "gender", "age_level", "income", "stages"} <= set(df.columns)
    assert df["stages"].dropna().str.contains(",").any()
    assert (df["income"].dropna() >= 0).all()  # -1 (unknown) became missing


def test_cikm_chunked_read_equals_whole_read(shared_data, monkeypatch):
    whole = read_table("taobao_ecomm_cikm2019", shared_data / "taobao_ecomm_cikm2019")
    monkeypatch.setattr(taobao, "CHUNK_ROWS", 5000)
    chunked = read_table("taobao_ecomm_cikm2019", shared_data / "taobao_ecomm_cikm2019")
    pd.testing.assert_frame_equal(whole, chunked)


def test_user_behavior_pairs_are_aggregated_while_streaming(shared_data, monkeypatch):
    path = shared_data / "taobao_user_behavior"
    whole = read_table("taobao_user_behavior", path)
    monkeypatch.setattr(taobao, "CHUNK_ROWS", 3000)
    chunked = read_table("taobao_user_behavior", path)
    pd.testing.assert_frame_equal(whole.sort_values(["user_id", "item_id"]).reset_index(drop=True),
                                  chunked.sort_values(["user_id", "item_id"]).reset_index(drop=True))
    assert not whole.duplicated(["user_id", "item_id"]).any()
    events = read_table("taobao_user_behavior", path, {"level": "event"})
    assert len(events) == 76922
    assert whole["pv"].sum() == events[events.behavior_type == "pv"].groupby(["user_id", "item_id"]).ngroups
    assert whole["first_timestamp"].dropna().min() > 1.5e9  # broken near-0 timestamps are missing, not minima


def test_unknown_reader_option_is_named(shared_data):
    with pytest.raises(Exception, match="unknown option `levle`.*did you mean `level`"):
        read_table("taobao_ecomm_cikm2019", shared_data / "taobao_ecomm_cikm2019", {"levle": "user"})


def test_empty_and_malformed_csv_files_raise_data_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_table("csv", empty)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(DataError, match=r"malformed row.*line 3.*on_bad_lines=skip"):
        read_table("csv", bad)
    assert len(read_table("csv", bad, {"on_bad_lines": "skip"})) == 1


def test_limit_takes_a_seeded_subset(shared_data):
    a = read_table("book30", shared_data / "book30", limit=100)
    b = read_table("book30", shared_data / "book30", limit=100)
    assert len(a) == 100 and a.equals(b)
    assert np.array_equal(a.index, np.arange(100))
