"""Product-catalogue readers: BigBasket, Amazon UK toys (category paths), Book30 (book titles → genre)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .readers import READERS, Reader, csv_chunks, find_file

MAX_CATEGORY_LEVELS = 5


def _first_number(series: pd.Series) -> pd.Series:
    """'£3.42 - £5.00' → 3.42, '1,040' → 1040, '4.9 out of 5 stars' → 4.9, '5 new' → 5; else NaN."""
    text = series.astype("string").str.replace(",", "", regex=False)
    return pd.to_numeric(text.str.extract(r"(\d+(?:\.\d+)?)", expand=False), errors="coerce")


# ---------------------------------------------------------------- BigBasket
def bigbasket_chunks(path: Path, options: dict[str, Any], chunksize: int) -> Iterator[pd.DataFrame]:
    file = find_file(path, "*.csv")
    for df in csv_chunks(file, chunksize=chunksize, encoding="utf-8"):
        for col in ("product", "category", "sub_category", "brand", "type"):
            df[col] = df[col].astype("string").str.strip()
        df["rating"] = pd.to_numeric(df["rating"], errors="coerce").replace(0.0, np.nan)
        df["discount"] = (1.0 - df["sale_price"] / df["market_price"]).clip(lower=0.0)
        yield df


def read_bigbasket(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    return pd.concat(bigbasket_chunks(path, options, 100_000), ignore_index=True)


READERS.register(
    "bigbasket_products",
    "BigBasket catalogue → product (title), category, sub_category, type, brand, sale_price, market_price, "
    "discount, rating (NaN where unknown)",
)(Reader(read=read_bigbasket, folder="bigbasket_products", chunks=bigbasket_chunks))


# ---------------------------------------------------------------- Amazon UK toys
def amazon_toys_chunks(path: Path, options: dict[str, Any], chunksize: int) -> Iterator[pd.DataFrame]:
    file = find_file(path, "*.csv")
    for df in csv_chunks(file, chunksize=chunksize, encoding="utf-8"):
        levels = df["amazon_category_and_sub_category"].astype("string").str.split(" > ")
        for i in range(MAX_CATEGORY_LEVELS):
            df[f"category_{i + 1}"] = levels.str.get(i).astype("string").str.strip()
        df["price"] = _first_number(df["price"])
        df["in_stock"] = _first_number(df["number_available_in_stock"])
        df["number_of_reviews"] = _first_number(df["number_of_reviews"])
        df["number_of_answered_questions"] = _first_number(df["number_of_answered_questions"])
        df["average_rating"] = _first_number(df["average_rating"])
        df["manufacturer"] = df["manufacturer"].astype("string").str.strip()
        yield df


def read_amazon_toys(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    return pd.concat(amazon_toys_chunks(path, options, 100_000), ignore_index=True)


READERS.register(
    "amazon_uk_toys",
    "Amazon UK toys → product_name, category_1..5 (path levels), manufacturer, price, average_rating, "
    "number_of_reviews",
)(Reader(read=read_amazon_toys, folder="amazon_uk_toys", chunks=amazon_toys_chunks))


# ---------------------------------------------------------------- Book30
def book30_chunks(path: Path, options: dict[str, Any], chunksize: int) -> Iterator[pd.DataFrame]:
    file = find_file(path, "*.csv")
    for df in csv_chunks(file, chunksize=chunksize, encoding="utf-8", encoding_errors="replace",
                         dtype={"asin": "string", "author": "string", "title": "string"}):
        df["author"] = df["author"].str.strip()
        yield df


def read_book30(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    return pd.concat(book30_chunks(path, options, 100_000), ignore_index=True)


READERS.register(
    "book30",
    "Book30 listing → title, author (NaN where missing), category (30 genres), category_id",
)(Reader(read=read_book30, folder="book30", chunks=book30_chunks))
