"""Train / valid / test splits: random (seeded and hash-stable), by time, by group, or from a column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import SplitConfig
from ..errors import DataError

SPLITS = ("train", "valid", "test")


def _unit_hash(values: pd.DataFrame | pd.Series, seed: int) -> np.ndarray:
    """A number in [0, 1) per row that depends only on the row's values and the seed, not on row order."""
    key = f"shopmtl{seed:09d}"[:16]
    values = _hashable(values)
    h = pd.util.hash_pandas_object(values, index=False, hash_key=key).to_numpy(dtype=np.uint64)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _hashable(values: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """List-valued columns (token lists) as their text, which pandas can hash."""
    def fix(col: pd.Series) -> pd.Series:
        if col.dtype == object and len(col) and isinstance(col.iloc[0], list | tuple | np.ndarray):
            return col.map(lambda v: "\x1f".join(map(str, v)) if isinstance(v, list | tuple | np.ndarray) else v)
        return col

    if isinstance(values, pd.Series):
        return fix(values)
    return values.apply(fix) if any(values[c].dtype == object for c in values.columns) else values


def _by_fraction(u: np.ndarray, valid: float, test: float) -> np.ndarray:
    out = np.full(len(u), "train", dtype=object)
    out[u < test + valid] = "valid"
    out[u < test] = "test"
    return out


def _by_time(col: pd.Series, valid: float, test: float) -> np.ndarray:
    if col.isna().any():
        raise DataError(f"data.split.column `{col.name}`: {int(col.isna().sum())} rows have no time value")
    out = np.full(len(col), "train", dtype=object)
    if test >= 1 or valid >= 1:  # whole time units: the last `test` distinct values are test, then `valid`
        if test != int(test) or valid != int(valid):
            raise DataError("data.split: with time units, `valid` and `test` must both be whole numbers "
                            "(e.g. test: 2, valid: 1 = the last 2 days are test, the day before valid)")
        units = np.sort(col.unique())
        n_test, n_valid = int(test), int(valid)
        if n_test + n_valid >= len(units):
            raise DataError(f"data.split: {len(units)} distinct `{col.name}` values cannot hold {n_test} test + "
                            f"{n_valid} valid units and leave any for training; lower test/valid")
        test_from = units[len(units) - n_test] if n_test else None
        valid_from = units[len(units) - n_test - n_valid] if n_valid else None
        if valid_from is not None:
            out[(col >= valid_from).to_numpy()] = "valid"
        if test_from is not None:
            out[(col >= test_from).to_numpy()] = "test"
        return out
    order = col.rank(method="first").to_numpy() / len(col)  # fractions of rows in time order
    out[order > 1 - test - valid] = "valid"
    out[order > 1 - test] = "test"
    return out


def assign_splits(df: pd.DataFrame, cfg: SplitConfig) -> np.ndarray:
    """'train' / 'valid' / 'test' per row."""
    if cfg.by == "random":
        out = _by_fraction(_unit_hash(df, cfg.seed), cfg.valid, cfg.test)
    elif cfg.by == "group":
        out = _by_fraction(_unit_hash(df[cfg.column].astype("string"), cfg.seed), cfg.valid, cfg.test)
    elif cfg.by == "time":
        out = _by_time(df[cfg.column], cfg.valid, cfg.test)
    else:
        out = df[cfg.column].astype("string").str.strip().str.lower().replace({"validation": "valid", "val": "valid"})
        bad = ~out.isin(SPLITS)
        if bad.any():
            raise DataError(f"data.split.column `{cfg.column}`: values must be train/valid/test, found "
                            f"{out[bad].iloc[0]!r} in row {int(np.flatnonzero(bad.to_numpy())[0])}")
        out = out.to_numpy(dtype=object)
        if not (out == "valid").any() and cfg.valid > 0:  # no valid rows given: carve them out of train
            train = out == "train"
            u = _unit_hash(df[train], cfg.seed)
            carved = np.where(u < cfg.valid, "valid", "train")
            out[train] = carved
    counts = {s: int((out == s).sum()) for s in SPLITS}
    if counts["train"] == 0:
        raise DataError(f"data.split: the training split is empty ({counts}); lower valid/test")
    if counts["valid"] == 0:
        raise DataError(f"data.split: the validation split is empty ({counts}); raise data.split.valid")
    return out
