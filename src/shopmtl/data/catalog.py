"""Product-catalogue readers: BigBasket, Amazon UK toys (category paths), Book30 (book titles → genre)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .readers import READERS, csv_format

MAX_CATEGORY_LEVELS = 5


def _first_number(series: pd.Series) -> pd.Series:
    """'£3.42 - £5.00' → 3.42, '1,040' → 1040, '4.9 out of 5 stars' → 4.9, '5 new' → 5; else NaN."""
    text = series.astype("string").str.replace(",", "", regex=False)
    return pd.to_numeric(text.str.extract(r"(\d+(?:\.\d+)?)", expand=False), errors="coerce")


def _strip(df: pd.DataFrame, columns: list[str]) -> None:
    for col in columns:
        df[col] = df[col].astype("string").str.strip()


def clean_bigbasket(df: pd.DataFrame) -> pd.DataFrame:
    _strip(df, ["product", "category", "sub_category", "brand", "type"])
    df["rating"] = pd.to_numeric(df["rating"], errors="coerce").replace(0.0, np.nan)  # 0.0 = unknown
    df["discount"] = (1.0 - df["sale_price"] / df["market_price"]).clip(lower=0.0)
    return df


def clean_amazon_toys(df: pd.DataFrame) -> pd.DataFrame:
    levels = df["amazon_category_and_sub_category"].astype("string").str.split(" > ")
    for i in range(MAX_CATEGORY_LEVELS):
        df[f"category_{i + 1}"] = levels.str.get(i).astype("string").str.strip()
    df["in_stock"] = _first_number(df["number_available_in_stock"])
    for col in ("price", "number_of_reviews", "number_of_answered_questions", "average_rating"):
        df[col] = _first_number(df[col])
    _strip(df, ["manufacturer"])
    return df


def clean_book30(df: pd.DataFrame) -> pd.DataFrame:
    _strip(df, ["author"])
    return df


READERS.register(
    "bigbasket_products",
    "BigBasket catalogue → product (title), category, sub_category, type, brand, sale_price, market_price, "
    "discount, rating (NaN where unknown)",
)(csv_format("bigbasket_products", clean_bigbasket, encoding="utf-8"))

READERS.register(
    "amazon_uk_toys",
    "Amazon UK toys → product_name, category_1..5 (path levels), manufacturer, price, average_rating, "
    "number_of_reviews",
)(csv_format("amazon_uk_toys", clean_amazon_toys, encoding="utf-8"))

READERS.register(
    "book30",
    "Book30 listing → title, author (NaN where missing), category (30 genres), category_id",
)(csv_format("book30", clean_book30, encoding="utf-8", encoding_errors="replace",
             dtype={"asin": "string", "author": "string", "title": "string"}))
