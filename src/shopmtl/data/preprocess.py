"""Feature preprocessing fitted on the training split only: vocabularies with an out-of-vocabulary id, numeric
transforms and scaling, tokenised text. Its state is plain JSON, saved with the run."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..config import CategoricalFeature, ExperimentConfig, MultiHotFeature, NumericFeature, TextFeature
from ..errors import DataError
from .text import is_tokens, token_offsets, tokenize

log = logging.getLogger("shopmtl")

PAD, OOV = 0, 1  # every vocabulary: 0 = missing / padding, 1 = seen nowhere in training
FIRST = "@first"  # the feature key suffix of a pretrained text feature's first-piece positions
BUCKET = "@bucket"  # … of a numeric feature's quantile bucket ids
WEIGHT = "@w"  # … of a sparse feature's token weights (next to its ids)
SECOND = {"text": FIRST, "numeric": BUCKET, "sparse": WEIGHT}


def as_keys(series: pd.Series) -> pd.Series:
    """Values as vocabulary keys: strings, with 5.0 written as '5' so that int and float columns agree."""
    if pd.api.types.is_float_dtype(series):
        values = series.dropna()
        if len(values) and np.all(np.mod(values.to_numpy(), 1) == 0):
            series = series.astype("Int64")
    out = series.astype("string").str.strip()
    return out.where(out != "")


class Vocab:
    """Token → id with PAD=0 and OOV=1; tokens kept by frequency (min_count, max_size)."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.index = {t: i + 2 for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, counts: Counter, min_count: int = 1, max_size: int | None = None) -> Vocab:
        kept = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        return cls(kept[:max_size] if max_size else kept)

    def __len__(self) -> int:
        return len(self.tokens) + 2

    def ids(self, tokens: Iterable[str]) -> list[int]:
        get = self.index.get
        return [get(t, OOV) for t in tokens]


def _pad(rows: list[list[int]], width: int) -> np.ndarray:
    out = np.zeros((len(rows), max(width, 1)), dtype=np.int64)
    for i, row in enumerate(rows):
        row = row[:width]
        out[i, : len(row)] = row
    return out


class VocabProcessor:
    """A feature whose values become ids in a vocabulary fitted on training rows."""

    def __init__(self, cfg: Any, vocab: Vocab | None = None):
        self.cfg, self.vocab = cfg, vocab

    def state(self) -> dict[str, Any]:
        return {"vocab": self.vocab.tokens}

    @property
    def size(self) -> int:
        return len(self.vocab)


class CategoricalProcessor(VocabProcessor):
    cfg: CategoricalFeature

    def fit(self, col: pd.Series) -> None:
        self.vocab = Vocab.build(Counter(as_keys(col).dropna()), self.cfg.min_count, self.cfg.max_vocab)

    def transform(self, col: pd.Series) -> np.ndarray:
        keys = as_keys(col)
        ids = keys.map(self.vocab.index).fillna(OOV).to_numpy(dtype=np.int64, copy=True)
        ids[keys.isna().to_numpy()] = PAD
        return ids


def quantile_edges(values: np.ndarray, n: int) -> list[float]:
    """Inner edges of `n` quantile buckets of the finite `values` (repeated edges merged: a count that is 0 for
    most rows gets fewer buckets)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return []
    edges = np.quantile(finite, np.linspace(0, 1, n + 1)[1:-1])
    return sorted({float(e) for e in edges})


def bucketise(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bucket ids: 0 = missing, 1 … len(edges) + 1 by the edges (right-closed, like pandas.qcut)."""
    ids = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left") + 1
    return np.where(np.isfinite(values), ids, 0).astype(np.int64)


class NumericProcessor:
    """A number: transformed (log1p), standardised on train, a missing flag; with `buckets`, also its quantile
    bucket (edges fitted on train) for an embedding."""

    def __init__(self, cfg: NumericFeature, mean: float = 0.0, std: float = 1.0, edges: list[float] | None = None):
        self.cfg, self.mean, self.std = cfg, mean, std
        self.edges = edges or []

    def _values(self, col: pd.Series) -> np.ndarray:
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values) & col.notna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"numeric feature column `{col.name}`: row {row} holds {col.iloc[row]!r}, not a number; "
                            f"declare it `type: categorical` or clean the column")
        if self.cfg.transform == "log1p":
            values = np.log1p(np.clip(values, 0, None))
        return values

    def fit(self, col: pd.Series) -> None:
        values = self._values(col)
        finite = values[np.isfinite(values)]
        self.mean = float(finite.mean()) if len(finite) else 0.0
        self.std = float(finite.std()) if len(finite) > 1 and finite.std() > 0 else 1.0
        if getattr(self.cfg, "buckets", None):
            self.edges = quantile_edges(values, self.cfg.buckets)

    @property
    def size(self) -> int:
        """Bucket ids: missing, and one more than the edges."""
        return len(self.edges) + 2

    def transform(self, col: pd.Series) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """[N, 2]: the standardised value (0 where missing) and a missing flag; with buckets, also the bucket
        ids [N]."""
        values = self._values(col)
        missing = ~np.isfinite(values)
        scaled = np.where(missing, 0.0, (values - self.mean) / self.std)
        dense = np.stack([scaled, missing.astype(np.float64)], axis=1).astype(np.float32)
        if getattr(self.cfg, "buckets", None):
            return dense, bucketise(values, self.edges)
        return dense

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mean": self.mean, "std": self.std}
        if getattr(self.cfg, "buckets", None):
            out["edges"] = self.edges
        return out


class MultiHotProcessor(VocabProcessor):
    MAX_TOKENS = 64
    cfg: MultiHotFeature

    def _tokens(self, col: pd.Series) -> list[list[str]]:
        sep = self.cfg.separator
        out = []
        for v in col.tolist():
            if isinstance(v, list | tuple | np.ndarray):
                out.append([str(t).strip() for t in v])
            elif v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
                out.append([])
            else:
                out.append([t.strip() for t in str(v).split(sep) if t.strip()])
        return out

    def fit(self, col: pd.Series) -> None:
        counts = Counter(t for row in self._tokens(col) for t in row)
        self.vocab = Vocab.build(counts, self.cfg.min_count, self.cfg.max_vocab)

    def transform(self, col: pd.Series) -> np.ndarray:
        return _pad([self.vocab.ids(row) for row in self._tokens(col)], self.MAX_TOKENS)


def _has_text(value: Any) -> bool:
    return isinstance(value, str) or is_tokens(value)


class TextProcessor(VocabProcessor):
    """Raw text is tokenised (`tokenizer:`); a row that is already a token list is kept as it is."""

    cfg: TextFeature

    def _tokens(self, col: pd.Series, lowercase: bool | None = None) -> list[list[str]]:
        c = self.cfg
        lower = c.lowercase if lowercase is None else lowercase
        return [tokenize(v, c.tokenizer, lower)[: c.max_len] if _has_text(v) else [] for v in col.tolist()]

    def token_counts(self, col: pd.Series) -> list[int]:
        """Tokens per row before the `max_len` cut (what a tagging task's tags must match)."""
        return [len(tokenize(v, self.cfg.tokenizer, False)) if _has_text(v) else 0 for v in col.tolist()]

    def offsets(self, col: pd.Series) -> list[list[tuple[int, int]]]:
        """Per row, where each kept token lies (see `data.text.token_offsets`)."""
        return [token_offsets(v, self.cfg.tokenizer)[: self.cfg.max_len] if _has_text(v) else []
                for v in col.tolist()]

    def fit(self, col: pd.Series) -> None:
        counts = Counter(t for row in self._tokens(col) for t in row)
        self.vocab = Vocab.build(counts, self.cfg.min_count, self.cfg.max_vocab)

    def transform(self, col: pd.Series) -> np.ndarray:
        return _pad([self.vocab.ids(row) for row in self._tokens(col)], self.cfg.max_len)


class PretrainedTextProcessor(TextProcessor):
    """Text for a pretrained encoder: the feature's tokens split into the encoder's word pieces. `transform`
    gives the piece ids [N, W] (with the model's start and end pieces) and each token's first-piece position
    [N, max_len] (0 past the row's tokens). Nothing is fitted: the vocabulary is the encoder's."""

    MAX_PIECES = 512

    def __init__(self, cfg: TextFeature, pretrained: str):
        super().__init__(cfg)
        from ..features.pretrained import PieceCache

        self.pretrained = pretrained
        self.cache = PieceCache(pretrained)

    def fit(self, col: pd.Series) -> None:
        tokens = [t for row in self._tokens(col, lowercase=False) for t in row]
        self.unknown = self.cache.unknown_share(tokens)
        if self.unknown > 0.2:
            log.warning("column `%s`: %.0f%% of its tokens are unknown to the tokenizer of `%s`; that encoder "
                        "cannot read this text well (all-MiniLM-L6-v2 knows English: for Chinese, use the "
                        "bilstm, cnn or transformer encoder over characters)", col.name, 100 * self.unknown,
                        self.pretrained)

    @property
    def size(self) -> int:
        return len(self.cache.tokenizer)

    def transform(self, col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        tok = self.cache.tokenizer
        rows = self._tokens(col, lowercase=False)
        pieces, first = [], []
        for row in rows:
            ids, starts = [tok.cls_token_id], []
            for token_pieces in self.cache.ids(row):
                if len(ids) + len(token_pieces) >= self.MAX_PIECES:
                    break
                starts.append(len(ids))
                ids += token_pieces
            pieces.append(ids + [tok.sep_token_id])
            first.append(starts)
        return _pad(pieces, max(map(len, pieces), default=1)), _pad(first, self.cfg.max_len)

    def state(self) -> dict[str, Any]:
        return {"pretrained": self.pretrained}


class SparseProcessor:
    """A sparse feature: tokens (n-grams of a text, or `col=value` / crosses / numeric buckets of id columns)
    hashed with murmurhash3 (the same in every process), the hash buckets seen in at least `min_count` training
    rows kept (at most `max_features`, most frequent first) and renumbered 1 … n, each weighted by TF-IDF, count
    or 1. `transform` gives ids [N, K] (0 = padding) and weights [N, K], K the most tokens a row holds."""

    def __init__(self, cfg: Any, kept: np.ndarray | None = None, idf: np.ndarray | None = None,
                 edges: dict[str, list[float]] | None = None, scale: dict[str, list[float]] | None = None):
        self.cfg = cfg
        self.kept = np.zeros(0, dtype=np.int64) if kept is None else np.asarray(kept, dtype=np.int64)
        self.idf = np.ones(len(self.kept), dtype=np.float32) if idf is None else np.asarray(idf, np.float32)
        self.edges = edges or {}
        self.scale = scale or {}  # `values` column → [mean, std] on train

    @property
    def size(self) -> int:
        """Ids: 0 padding, the kept buckets, then per `values` column its value and its missing flag."""
        return len(self.kept) + 1 + 2 * len(getattr(self.cfg, "values", []))

    def _numbers(self, data: pd.DataFrame, col: str) -> np.ndarray:
        values = pd.to_numeric(data[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return np.log1p(np.clip(values, 0, None)) if self.cfg.log1p else values

    # ---- tokens
    def tokens(self, data: pd.DataFrame) -> list[list[str]]:
        c = self.cfg
        if c.source == "text":
            col = data.iloc[:, 0]
            low, high = c.ngrams
            rows = [tokenize(v, c.tokenizer, c.lowercase)[: c.max_len] if _has_text(v) else [] for v in col.tolist()]
            return [ngram_tokens(r, low, high) for r in rows]
        parts: dict[str, pd.Series] = {}
        for col in c.columns:
            keys = as_keys(data[col])
            parts[col] = (col + "=" + keys).where(keys.notna())
        for col in c.numeric:
            ids = bucketise(self._numbers(data, col), self.edges.get(col, []))
            parts[col] = pd.Series([f"{col}#q{i}" if i else f"{col}#na" for i in ids], index=data.index)
        token_columns = [parts[col] for col in list(c.columns) + list(c.numeric)]
        for a, b in c.cross:
            token_columns.append((parts[a] + "&" + parts[b]).where(parts[a].notna() & parts[b].notna()))
        if not token_columns:  # only `values`: no hashed tokens
            return [[] for _ in range(len(data))]
        table = pd.concat(token_columns, axis=1).to_numpy(dtype=object)
        return [[t for t in row if isinstance(t, str)] for row in table]

    def _counts(self, data: pd.DataFrame) -> Any:
        from sklearn.feature_extraction.text import HashingVectorizer

        hv = HashingVectorizer(analyzer=_identity_tokens, n_features=self.cfg.buckets, alternate_sign=False,
                               norm=None, dtype=np.float32)
        return hv.transform(self.tokens(data))

    # ---- fit / transform
    def fit(self, data: pd.DataFrame) -> None:
        c = self.cfg
        if c.source == "ids":
            for col in c.numeric:
                self.edges[col] = quantile_edges(self._numbers(data, col), c.quantiles)
            for col in c.values:
                finite = self._numbers(data, col)
                finite = finite[np.isfinite(finite)]
                std = float(finite.std()) if len(finite) > 1 and finite.std() > 0 else 1.0
                self.scale[col] = [float(finite.mean()) if len(finite) else 0.0, std]
        counts = self._counts(data).tocsc()
        df = np.diff(counts.indptr)  # rows per bucket
        buckets = np.flatnonzero(df >= c.min_count)
        if c.max_features and len(buckets) > c.max_features:
            order = np.lexsort((buckets, -df[buckets]))
            buckets = np.sort(buckets[order[: c.max_features]])
        self.kept = buckets.astype(np.int64)
        n = counts.shape[0]
        self.idf = (np.log((1 + n) / (1 + df[buckets])) + 1).astype(np.float32)

    def transform(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        counts = self._counts(data).tocsr()
        counts.sum_duplicates()
        # keep the fitted buckets, renumbered 1 … n in bucket order
        pos = np.searchsorted(self.kept, counts.indices)
        pos = np.minimum(pos, max(len(self.kept) - 1, 0))
        hit = (self.kept[pos] == counts.indices) if len(self.kept) else np.zeros(len(counts.indices), bool)
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))[hit]
        ids, tf = pos[hit] + 1, counts.data[hit]
        weighting = self.cfg.weights
        if weighting == "binary":
            w = np.ones_like(tf)
        elif weighting == "count":
            w = tf
        else:
            w = (1 + np.log(tf)) * self.idf[ids - 1]
            norms = np.sqrt(np.bincount(rows, weights=w.astype(np.float64) ** 2, minlength=counts.shape[0]))
            w = w / np.maximum(norms[rows], 1e-12)
        lengths = np.bincount(rows, minlength=counts.shape[0])
        width = max(int(lengths.max(initial=0)), 1)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        col = np.arange(len(rows)) - starts[rows]
        out_ids = np.zeros((counts.shape[0], width), dtype=np.int64)
        out_w = np.zeros((counts.shape[0], width), dtype=np.float32)
        out_ids[rows, col] = ids
        out_w[rows, col] = w
        extra = self._value_columns(data)
        if extra is not None:
            out_ids, out_w = np.concatenate([out_ids, extra[0]], 1), np.concatenate([out_w, extra[1]], 1)
        return out_ids, out_w

    def _value_columns(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
        """Per `values` column two entries: its id with the standardised value (0 where missing), and its
        missing id with weight 1 where the value is missing (padding otherwise)."""
        names = list(getattr(self.cfg, "values", []))
        if not names:
            return None
        n, first = len(data), len(self.kept) + 1
        ids = np.zeros((n, 2 * len(names)), dtype=np.int64)
        weights = np.zeros((n, 2 * len(names)), dtype=np.float32)
        for k, col in enumerate(names):
            values = self._numbers(data, col)
            mean, std = self.scale.get(col, [0.0, 1.0])
            missing = ~np.isfinite(values)
            ids[:, 2 * k] = np.where(missing, 0, first + 2 * k)
            weights[:, 2 * k] = np.where(missing, 0.0, (values - mean) / std)
            ids[:, 2 * k + 1] = np.where(missing, first + 2 * k + 1, 0)
            weights[:, 2 * k + 1] = missing.astype(np.float32)
        return ids, weights

    def state(self) -> dict[str, Any]:
        return {"kept": self.kept.tolist(), "idf": [float(v) for v in self.idf], "edges": self.edges,
                "scale": self.scale}

    @classmethod
    def from_state(cls, cfg: Any, state: dict[str, Any]) -> SparseProcessor:
        return cls(cfg, np.asarray(state["kept"], dtype=np.int64), np.asarray(state["idf"], dtype=np.float32),
                   state.get("edges") or {}, state.get("scale") or {})


def _identity_tokens(tokens: list[str]) -> list[str]:
    return tokens


def ngram_tokens(tokens: list[str], low: int, high: int) -> list[str]:
    """The token n-grams of `low` … `high` tokens, each joined by a space."""
    out: list[str] = []
    for n in range(low, high + 1):
        if n == 1:
            out += tokens
        else:
            out += [" ".join(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]
    return out


Processor = (CategoricalProcessor | NumericProcessor | MultiHotProcessor | TextProcessor | PretrainedTextProcessor
             | SparseProcessor)
_KINDS: dict[str, type] = {"categorical": CategoricalProcessor, "numeric": NumericProcessor,
                           "multihot": MultiHotProcessor, "text": TextProcessor, "sparse": SparseProcessor}


def _restore(cfg: Any, state: dict[str, Any]) -> Processor:
    if cfg.type == "numeric":
        return NumericProcessor(cfg, state["mean"], state["std"], state.get("edges"))
    if cfg.type == "sparse":
        return SparseProcessor.from_state(cfg, state)
    if "pretrained" in state:
        return PretrainedTextProcessor(cfg, state["pretrained"])
    return _KINDS[cfg.type](cfg, Vocab(state["vocab"]))


def _processor(config: ExperimentConfig, feature: Any) -> Processor:
    if feature.type == "text" and config.model.text.encoder == "pretrained":
        return PretrainedTextProcessor(feature, config.model.text.pretrained)
    return _KINDS[feature.type](feature)


class Preprocessor:
    """One processor per feature, fitted on training rows; `transform` gives numpy arrays keyed by feature."""

    def __init__(self, config: ExperimentConfig, processors: dict[str, Processor] | None = None):
        self.config = config
        self.processors = processors or {name: _processor(config, f) for name, f in config.features.items()}

    def columns(self) -> dict[str, str]:
        return {name: self.config.feature_column(name) for name in self.config.features}

    def _input(self, df: pd.DataFrame, name: str) -> pd.Series | pd.DataFrame:
        """What a feature's processor reads: its column, or the frame of its columns (a sparse feature)."""
        if self.config.features[name].type == "sparse":
            return df[self.config.feature_columns(name)]
        return df[self.config.feature_column(name)]

    def fit(self, df: pd.DataFrame) -> Preprocessor:
        for name in self.config.features:
            self.processors[name].fit(self._input(df, name))
        return self

    def transform(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        needed = sorted({c for n in self.config.features for c in self.config.feature_columns(n)})
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise DataError(f"input lacks feature column(s) {missing}; the model was trained on {needed}")
        out: dict[str, np.ndarray] = {}
        for name in self.config.features:
            arrays = self.processors[name].transform(self._input(df, name))
            if isinstance(arrays, tuple):  # a second array: first-piece positions, bucket ids, token weights
                out[name], out[name + SECOND[self.config.features[name].type]] = arrays
            else:
                out[name] = arrays
        return out

    def state_dict(self) -> dict[str, Any]:
        return {name: p.state() for name, p in self.processors.items()}

    @classmethod
    def from_state(cls, config: ExperimentConfig, state: dict[str, Any]) -> Preprocessor:
        return cls(config, {name: _restore(config.features[name], state[name]) for name in config.features})
