"""The reader registry: a format name → a function that turns files in that format into one sample table."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError, DataError, did_you_mean
from ..registry import Registry

ReadFn = Callable[[Path, dict[str, Any], "int | None"], pd.DataFrame]
ChunkFn = Callable[[Path, dict[str, Any], int], Iterator[pd.DataFrame]]


@dataclass(frozen=True)
class Reader:
    """How to read one format. Row-per-sample formats give `chunks` (the whole table is their concatenation);
    formats whose samples aggregate a whole log (e.g. Taobao events → per-day samples) give `read`."""

    folder: str  # the folder name under a data directory where this format's files live by default
    chunks: ChunkFn | None = None
    read: ReadFn | None = None
    options: dict[str, str] = field(default_factory=dict)  # accepted options → what they do

    def table(self, path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
        if self.read is not None:
            return self.read(path, options, limit)
        parts = list(self.chunks(path, options, 100_000))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


READERS: Registry[Reader] = Registry("reader", "data.source.format")
DEFAULT_DATA_DIR = Path("../shared/data")


def data_dir() -> Path:
    """Where datasets live by default: $SHOPMTL_DATA_DIR, else ../shared/data from the working directory."""
    return Path(os.environ.get("SHOPMTL_DATA_DIR", DEFAULT_DATA_DIR))


def resolve_path(fmt: str, path: str | None, base: Path | None = None) -> Path:
    """The file or folder a source reads: its configured path, else the format's folder under the data dir."""
    reader = READERS.get(fmt)
    if path is None:
        resolved = data_dir() / reader.folder
    else:
        resolved = Path(path).expanduser()
        if not resolved.is_absolute() and not resolved.exists() and base is not None and (base / resolved).exists():
            resolved = base / resolved
    if not resolved.exists():
        raise DataError(
            f"data.source.path: {resolved} does not exist; point it at your `{fmt}` files "
            f"(--set data.source.path=/path/to/{reader.folder}) or set SHOPMTL_DATA_DIR / --data-dir"
        )
    return resolved


def check_options(fmt: str, options: dict[str, Any]) -> None:
    accepted = READERS.get(fmt).options
    for key in options:
        if key not in accepted:
            hint = did_you_mean(key, accepted) if accepted else f" the `{fmt}` reader takes no options."
            raise ConfigError(f"data.source.options: unknown option `{key}` for `{fmt}`;{hint}")


def read_table(fmt: str, path: Path, options: dict[str, Any] | None = None, limit: int | None = None) -> pd.DataFrame:
    """All samples of a source as one table (at most `limit`, a seeded random subset of them)."""
    options = options or {}
    check_options(fmt, options)
    df = READERS.get(fmt).table(path, options, limit)
    if len(df) == 0:
        raise DataError(f"{path}: no samples were read (is the file empty?)")
    if limit is not None and len(df) > limit:
        df = df.sample(n=limit, random_state=0).sort_index()
    return df.reset_index(drop=True)


def iter_table(fmt: str, path: Path, options: dict[str, Any] | None = None,
               chunksize: int = 50_000) -> Iterator[pd.DataFrame]:
    """Samples in chunks, for formats with one sample per row; aggregate formats are read whole."""
    options = options or {}
    check_options(fmt, options)
    reader = READERS.get(fmt)
    if reader.chunks is None:
        yield read_table(fmt, path, options)
        return
    empty = True
    for chunk in reader.chunks(path, options, chunksize):
        empty = empty and len(chunk) == 0
        yield chunk
    if empty:
        raise DataError(f"{path}: no samples were read (is the file empty?)")


def find_file(path: Path, pattern: str) -> Path:
    """`path` itself if it is a file, else the one file in folder `path` matching `pattern`."""
    if path.is_file():
        return path
    found = sorted(path.glob(pattern))
    if not found:
        raise DataError(f"{path}: no file matching `{pattern}` in this folder")
    return found[0]


def csv_chunks(path: Path, chunksize: int | None = None, **kwargs: Any) -> Iterator[pd.DataFrame]:
    """pandas.read_csv in chunks, with empty files and malformed rows turned into errors that name the file."""
    try:
        reader = pd.read_csv(path, chunksize=chunksize or 1_000_000, **kwargs)
        yield from reader
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as e:
        raise DataError(
            f"{path}: malformed row: {str(e).strip()}; fix the row, or skip bad rows with "
            f"data.source.options.on_bad_lines=skip"
        ) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not readable as {kwargs.get('encoding', 'utf-8')} ({e.reason}); "
                        f"set data.source.options.encoding") from None


def csv_format(folder: str, clean: Callable[[pd.DataFrame], pd.DataFrame], **csv_kwargs: Any) -> Reader:
    """A reader for a CSV format with one sample per row: chunks of the folder's CSV file, each `clean`ed."""

    def chunks(path: Path, options: dict[str, Any], chunksize: int) -> Iterator[pd.DataFrame]:
        for df in csv_chunks(find_file(path, "*.csv"), chunksize=chunksize, **csv_kwargs):
            yield clean(df)

    return Reader(folder=folder, chunks=chunks)


def read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    chunks = list(csv_chunks(path, **kwargs))
    if not chunks:
        raise DataError(f"{path}: the file is empty")
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def snake(name: str) -> str:
    """'Review Text' → 'review_text', the column naming readers use."""
    out = "".join(c.lower() if c.isalnum() else "_" for c in str(name).strip())
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_")


def register_all() -> None:
    """Import the modules that register readers (imported for their side effect)."""
    from . import catalog, reviews, tabular, taobao, tokens  # noqa: F401


register_all()
