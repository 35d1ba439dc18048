"""Generic `csv` and `parquet` readers: one sample per row, columns as they are in the file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError
from .readers import READERS, Reader, csv_chunks, find_file

CSV_OPTIONS = {
    "sep": "field separator (default `,`; `\\t` for TSV)",
    "encoding": "text encoding (default utf-8)",
    "on_bad_lines": "error (default) | skip | warn: what to do with a malformed row",
}


def _csv_kwargs(path: Path, options: dict[str, Any]) -> dict[str, Any]:
    sep = options.get("sep", "\t" if path.suffix in (".tsv", ".txt") else ",")
    return {
        "sep": sep,
        "encoding": options.get("encoding", "utf-8-sig"),
        "on_bad_lines": options.get("on_bad_lines", "error"),
    }


def csv_table_chunks(path: Path, options: dict[str, Any], chunksize: int) -> Iterator[pd.DataFrame]:
    path = find_file(path, "*.csv")
    yield from csv_chunks(path, chunksize=chunksize, **_csv_kwargs(path, options))


def read_csv_table(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    path = find_file(path, "*.csv")
    kwargs = _csv_kwargs(path, options)
    if limit is not None:
        kwargs["nrows"] = limit
    chunks = list(csv_chunks(path, **kwargs))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()


def parquet_chunks(path: Path, options: dict[str, Any], chunksize: int) -> Iterator[pd.DataFrame]:
    path = find_file(path, "*.parquet*")
    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=chunksize):
            yield batch.to_pandas()
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None


def read_parquet_table(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    chunks = []
    rows = 0
    for chunk in parquet_chunks(path, options, 100_000):
        chunks.append(chunk)
        rows += len(chunk)
        if limit is not None and rows >= limit:
            break
    if not chunks:
        return pd.DataFrame()
    df = pd.concat(chunks, ignore_index=True)
    return df.head(limit) if limit is not None else df


READERS.register("csv", "any CSV/TSV file, one sample per row (streamed)")(
    Reader(folder=".", chunks=csv_table_chunks, read=read_csv_table, options=CSV_OPTIONS)
)
READERS.register("parquet", "any Parquet file, one sample per row (streamed by row batch)")(
    Reader(folder=".", chunks=parquet_chunks, read=read_parquet_table)
)


def table_format(path: Path) -> str | None:
    """`csv` or `parquet` from a file's name, else None."""
    name = path.name.lower()
    if name.endswith((".csv", ".tsv", ".csv.gz")):
        return "csv"
    if ".parquet" in name:
        return "parquet"
    return None
