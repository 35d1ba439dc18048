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


class NumericProcessor:
    def __init__(self, cfg: NumericFeature, mean: float = 0.0, std: float = 1.0):
        self.cfg, self.mean, self.std = cfg, mean, std

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

    def transform(self, col: pd.Series) -> np.ndarray:
        """[N, 2]: the standardised value (0 where missing) and a missing flag."""
        values = self._values(col)
        missing = ~np.isfinite(values)
        scaled = np.where(missing, 0.0, (values - self.mean) / self.std)
        return np.stack([scaled, missing.astype(np.float64)], axis=1).astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}


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


Processor = CategoricalProcessor | NumericProcessor | MultiHotProcessor | TextProcessor | PretrainedTextProcessor
_KINDS: dict[str, type] = {"categorical": CategoricalProcessor, "numeric": NumericProcessor,
                           "multihot": MultiHotProcessor, "text": TextProcessor}


def _restore(cfg: Any, state: dict[str, Any]) -> Processor:
    if cfg.type == "numeric":
        return NumericProcessor(cfg, state["mean"], state["std"])
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

    def fit(self, df: pd.DataFrame) -> Preprocessor:
        for name, column in self.columns().items():
            self.processors[name].fit(df[column])
        return self

    def transform(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        missing = [c for c in self.columns().values() if c not in df.columns]
        if missing:
            raise DataError(f"input lacks feature column(s) {missing}; the model was trained on "
                            f"{sorted(set(self.columns().values()))}")
        out: dict[str, np.ndarray] = {}
        for name, column in self.columns().items():
            arrays = self.processors[name].transform(df[column])
            if isinstance(arrays, tuple):  # a pretrained text feature: piece ids and first-piece positions
                out[name], out[name + FIRST] = arrays
            else:
                out[name] = arrays
        return out

    def state_dict(self) -> dict[str, Any]:
        return {name: p.state() for name, p in self.processors.items()}

    @classmethod
    def from_state(cls, config: ExperimentConfig, state: dict[str, Any]) -> Preprocessor:
        return cls(config, {name: _restore(config.features[name], state[name]) for name in config.features})
