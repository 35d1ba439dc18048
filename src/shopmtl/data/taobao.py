"""Taobao behaviour logs → samples.

`taobao_ecomm_cikm2019` (CIKM-2019 EComm AI, 10 days): by default one sample per (user, item, day) with labels
click / fav / cart / buy (did the user do it to that item that day), the item's features, the user's profile, and
history features counted only over *earlier* days (no leakage from the sample's own day or later). With
`level: user`, one sample per user: behaviour aggregates over all days as features, the profile as labels.

`taobao_user_behavior` (Tianchi UserBehavior.csv): one sample per (user, item) with pv / cart / fav / buy labels,
aggregated while streaming the file in chunks, so the full 100-million-row release reads in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .readers import READERS, Reader, csv_chunks, find_file

BEHAVIOURS = {1: "click", 2: "fav", 3: "cart", 4: "buy"}
HISTORY_KEYS = {
    "user": ["user_id"],
    "item": ["item_id"],
    "user_item": ["user_id", "item_id"],
    "user_cate": ["user_id", "cate_id"],
}
PROFILE_COLUMNS = ["user_id", "gender", "age_level", "education", "career", "income", "stages"]
ITEM_COLUMNS = ["item_id", "cate_1_id", "cate_id", "brand_id", "price"]
CHUNK_ROWS = 1_000_000  # rows read at a time from an event log: memory stays bounded on the full releases


def _tsv(path: Path, names: list[str], chunksize: int | None = None, **kw: Any) -> Iterator[pd.DataFrame]:
    for chunk in csv_chunks(path, chunksize=chunksize or CHUNK_ROWS, sep="\t", header=None, **kw):
        if chunk.shape[1] != len(names):
            raise DataError(f"{path}: expected {len(names)} tab-separated columns ({', '.join(names)}), "
                            f"found {chunk.shape[1]}")
        chunk.columns = names
        yield chunk


def _daily_counts(edge_file: Path) -> pd.DataFrame:
    """Events → one row per (user, item, date) with a count per behaviour, read in chunks; duplicates dropped."""
    parts = []
    names = ["user_id", "item_id", "behavior", "date"]
    for chunk in _tsv(edge_file, names, dtype={"user_id": "int64", "item_id": "int64", "behavior": "int8",
                                               "date": "int32"}):
        bad = ~chunk["behavior"].isin(list(BEHAVIOURS))
        if bad.any():
            raise DataError(f"{edge_file}: behavior must be 1..4, found {chunk.loc[bad, 'behavior'].iloc[0]}")
        parts.append(chunk.drop_duplicates())
    events = pd.concat(parts, ignore_index=True).drop_duplicates()
    counts = (events.assign(n=1).pivot_table(index=["user_id", "item_id", "date"], columns="behavior",
                                               values="n", aggfunc="sum", fill_value=0))
    counts = counts.reindex(columns=list(BEHAVIOURS), fill_value=0)
    counts.columns = [BEHAVIOURS[c] for c in counts.columns]
    return counts.reset_index()


def prior_counts(daily: pd.DataFrame, keys: list[str], prefix: str) -> pd.DataFrame:
    """Per (keys, date): counts of each behaviour on strictly earlier dates (the leak-free history)."""
    behaviours = list(BEHAVIOURS.values())
    per_day = daily.groupby(keys + ["date"], sort=True)[behaviours].sum()
    before = per_day.groupby(level=keys, sort=False).cumsum() - per_day
    before.columns = [f"{prefix}_prior_{b}s" for b in behaviours]
    return before.reset_index()


def _profiles(user_file: Path) -> pd.DataFrame:
    users = pd.concat(_tsv(user_file, PROFILE_COLUMNS, dtype={"stages": "string"}), ignore_index=True)
    for col in ("gender", "age_level", "education", "career"):
        users[col] = users[col].where(users[col] >= 0).astype("Int64")
    users["income"] = users["income"].where(users["income"] >= 0)
    users["stages"] = users["stages"].where(users["stages"].str.strip() != "-1")
    return users


def _items(item_file: Path) -> pd.DataFrame:
    items = pd.concat(_tsv(item_file, ITEM_COLUMNS), ignore_index=True).drop_duplicates("item_id")
    items["brand_id"] = items["brand_id"].where(items["brand_id"] != 0)  # 0 = unknown brand
    return items


def _cikm_files(path: Path) -> tuple[Path, Path, Path]:
    if path.is_file():
        path = path.parent
    return (find_file(path, "*edge*.txt"), find_file(path, "*item_feature*.txt"),
            find_file(path, "*user_feature*.txt"))


def read_cikm_interactions(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    edge_file, item_file, user_file = _cikm_files(path)
    daily = _daily_counts(edge_file)
    items = _items(item_file)
    daily = daily.merge(items[["item_id", "cate_id"]], on="item_id", how="left")
    samples = daily.copy()
    for name, keys in HISTORY_KEYS.items():
        samples = samples.merge(prior_counts(daily, keys, name), on=keys + ["date"], how="left")
    behaviours = list(BEHAVIOURS.values())
    samples[behaviours] = (samples[behaviours] > 0).astype("int8")
    day = pd.to_datetime(samples["date"].astype(str), format="%Y%m%d")
    samples["day_of_week"] = day.dt.day_of_week
    samples["user_prior_active_days"] = _prior_active_days(daily)(samples)
    samples = samples.merge(items.drop(columns=["cate_id"]), on="item_id", how="left")
    samples = samples.merge(_profiles(user_file), on="user_id", how="left")
    return samples.sort_values(["date", "user_id", "item_id"], kind="stable").reset_index(drop=True)


def _prior_active_days(daily: pd.DataFrame):
    days = daily[["user_id", "date"]].drop_duplicates().sort_values(["user_id", "date"])
    days["user_prior_active_days"] = days.groupby("user_id").cumcount()

    def lookup(samples: pd.DataFrame) -> pd.Series:
        return samples[["user_id", "date"]].merge(days, on=["user_id", "date"], how="left")[
            "user_prior_active_days"].to_numpy()

    return lookup


def read_cikm_users(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    """One sample per user: behaviour aggregates (features) and the profile (labels)."""
    edge_file, item_file, user_file = _cikm_files(path)
    daily = _daily_counts(edge_file).merge(_items(item_file), on="item_id", how="left")
    behaviours = list(BEHAVIOURS.values())
    g = daily.groupby("user_id")
    users = g[behaviours].sum().add_prefix("n_")
    users["n_items"] = g["item_id"].nunique()
    users["n_categories"] = g["cate_id"].nunique()
    users["n_active_days"] = g["date"].nunique()
    users["mean_log_price"] = g["price"].apply(lambda p: float(np.log1p(p.dropna()).mean()) if p.notna().any()
                                               else np.nan)
    bought = daily[daily["buy"] > 0]
    users["mean_log_price_bought"] = bought.groupby("user_id")["price"].apply(lambda p: float(np.log1p(p).mean()))
    users["top_categories"] = g["cate_id"].agg(_top_tokens)
    users["top_parent_categories"] = g["cate_1_id"].agg(_top_tokens)
    users = users.reset_index().merge(_profiles(user_file), on="user_id", how="left")
    return users


def _top_tokens(values: pd.Series, k: int = 20) -> str:
    counts = values.dropna().astype("int64").value_counts()
    return ",".join(str(v) for v in counts.index[:k])


def _level(options: dict[str, Any], levels: tuple[str, ...]) -> str:
    """The `level` option (the first of `levels` by default), checked."""
    level = options.get("level", levels[0])
    if level not in levels:
        raise DataError(f"data.source.options.level: `{level}` is not a level; use one of {list(levels)}")
    return level


def read_cikm(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    if _level(options, ("interaction", "user")) == "user":
        return read_cikm_users(path, options, limit)
    return read_cikm_interactions(path, options, limit)


READERS.register(
    "taobao_ecomm_cikm2019",
    "Taobao CIKM-2019 10-day logs → per (user, item, day): click/fav/cart/buy + item, profile and leak-free "
    "history features; level: user → one sample per user (profile labels)",
)(Reader(folder="taobao_ecomm_cikm2019", read=read_cikm,
         options={"level": "interaction (default): per (user, item, day) | user: per user"}))


# ---------------------------------------------------------------- UserBehavior.csv
UB_BEHAVIOURS = ["pv", "cart", "fav", "buy"]
MIN_VALID_TIMESTAMP = 946_684_800  # 2000-01-01: a few rows in the public file have timestamps near 0


def _user_behavior_events(path: Path, chunksize: int) -> Iterator[pd.DataFrame]:
    file = find_file(path, "*.csv")
    names = ["user_id", "item_id", "category_id", "behavior_type", "timestamp"]
    for chunk in csv_chunks(file, chunksize=chunksize, header=None, names=names,
                            dtype={"user_id": "int64", "item_id": "int64", "category_id": "int64",
                                   "behavior_type": "string", "timestamp": "int64"}):
        bad = ~chunk["behavior_type"].isin(UB_BEHAVIOURS)
        if bad.any():
            row = int(chunk.index[bad][0]) + 1
            raise DataError(f"{file}: row {row}: behavior_type must be one of {UB_BEHAVIOURS}, "
                            f"found {chunk.loc[bad, 'behavior_type'].iloc[0]!r}")
        chunk["timestamp"] = chunk["timestamp"].where(chunk["timestamp"] >= MIN_VALID_TIMESTAMP)
        yield chunk


def read_user_behavior(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    if _level(options, ("pair", "event")) == "event":
        return pd.concat(_user_behavior_events(path, CHUNK_ROWS), ignore_index=True)
    partials = []
    for chunk in _user_behavior_events(path, CHUNK_ROWS):
        flags = pd.get_dummies(chunk["behavior_type"]).reindex(columns=UB_BEHAVIOURS, fill_value=False)
        part = pd.concat([chunk[["user_id", "item_id", "category_id", "timestamp"]], flags.astype("int32")], axis=1)
        partials.append(part.groupby(["user_id", "item_id"]).agg(
            category_id=("category_id", "first"), first_timestamp=("timestamp", "min"),
            n_events=("timestamp", "size"), **{b: (b, "sum") for b in UB_BEHAVIOURS}))
    pairs = pd.concat(partials).groupby(level=[0, 1]).agg(
        category_id=("category_id", "first"), first_timestamp=("first_timestamp", "min"),
        n_events=("n_events", "sum"), **{b: (b, "sum") for b in UB_BEHAVIOURS})
    pairs[UB_BEHAVIOURS] = (pairs[UB_BEHAVIOURS] > 0).astype("int8")
    return pairs.reset_index().sort_values("first_timestamp", kind="stable").reset_index(drop=True)


READERS.register(
    "taobao_user_behavior",
    "Tianchi UserBehavior.csv → per (user, item): pv/cart/fav/buy, category_id, first_timestamp (streamed); "
    "level: event → raw events",
)(Reader(folder="taobao_user_behavior", read=read_user_behavior,
         options={"level": "pair (default): per (user, item) | event: one row per event"}))
