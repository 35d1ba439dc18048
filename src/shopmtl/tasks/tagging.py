"""Tagging task: typed spans over the tokens of a text feature (brand, model, product word in a title).

Labels are a tag sequence per row (a list, or a string of space-separated tags) in BIO, BIOES or BILOU, one tag
per token of the task's text feature. They are read as spans and re-tagged in the task's `scheme`. The head reads
the shared text encoder's per-token vectors together with the task's representation from the architecture, scores
each tag per token, and a CRF (or a per-token softmax) decodes. Metrics are exact-match span precision / recall /
F1, micro over types and per type; predictions decode to {type: [(text, start, end), ...]} per row.

The head's output is [B, L, tags + 1]: the tag scores and, in the last channel, the token mask."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data.text import is_tokens, span_text, tokenize
from ..errors import DataError
from .base import TASK_TYPES, Task
from .crf import CRF
from .spans import Span, allowed_transitions, scheme_tags, span_scores, spans_to_tags, tags_to_spans


def _find(tokens: list[str], needle: list[str], kind: str) -> list[Span]:
    """The first occurrence of `needle` in `tokens` as a span of `kind` (none if it does not occur)."""
    n = len(needle)
    for i in range(len(tokens) - n + 1 if n else 0):
        if tokens[i: i + n] == needle:
            return [(kind, i, i + n)]
    return []


class TaggingHead(nn.Module):
    """Tag scores per token from its vector and the task's representation, plus (with `window`) a linear term
    over its token-window features; the last output channel carries the token mask."""

    def __init__(self, rep_dim: int, seq_dim: int, n_tags: int, crf: CRF | None, dropout: float = 0.0,
                 window: nn.Module | None = None):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.emit = nn.Linear(seq_dim + rep_dim, n_tags)
        self.crf = crf
        self.window = window

    def forward(self, rep: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor,
                token_ids: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([self.dropout(seq), rep.unsqueeze(1).expand(-1, seq.shape[1], -1).to(seq.dtype)], dim=-1)
        scores = self.emit(x)
        if self.window is not None and token_ids is not None:
            scores = scores + self.window(token_ids[:, : scores.shape[1]]).to(scores.dtype)
        return torch.cat([scores, mask.unsqueeze(-1).to(x.dtype)], dim=-1)


@TASK_TYPES.register("tagging", "typed spans over a text feature's tokens (BIO/BIOES), CRF decoding; span F1")
class TaggingTask(Task):
    metric_names = ("span_f1", "span_precision", "span_recall", "token_accuracy")

    def __init__(self, name: str, cfg: Any, column: str):
        super().__init__(name, cfg, column)
        self.text_feature: str = cfg.text
        self.types: list[str] = []
        self.seen_types: list[str] = []
        self.width = 128
        self.text_column = cfg.text
        self.dropout = 0.0  # the model's dropout, on the per-token vectors (set by `bind`)
        self._head: TaggingHead | None = None

    def bind(self, config: Any) -> None:
        feature = config.features[self.text_feature]
        self.width, self.text_column = feature.max_len, config.feature_column(self.text_feature)
        self.tokenizer = feature.tokenizer
        self.dropout = config.model.dropout

    def label_values(self, df: pd.DataFrame) -> pd.Series:
        """Tags per row; with `labels: value`, derived: the first place where the column's value occurs in the
        text as whole tokens (case-insensitive) is a span, a row whose value does not occur has no span, and a
        row without a value is unlabelled."""
        if self.cfg.labels == "tags":
            return df[self.column]
        kind = (self.cfg.types or [self.column])[0]
        rows = []
        for text, value in zip(df[self.text_column].tolist(), df[self.column].tolist(), strict=True):
            tokens = tokenize(text, self.tokenizer) if isinstance(text, str) or is_tokens(text) else []
            if not isinstance(value, str) or not value.strip():
                rows.append(None)
                continue
            rows.append(spans_to_tags(_find(tokens, tokenize(value, self.tokenizer), kind), len(tokens), "bio"))
        return pd.Series(rows, index=df.index, name=self.column, dtype=object)

    # ---- labels
    def _rows(self, labels: pd.Series) -> list[list[str] | None]:
        rows: list[list[str] | None] = []
        for i, value in zip(labels.index, labels.tolist(), strict=True):
            if is_tokens(value):
                rows.append([str(t) for t in value])
            elif isinstance(value, str):
                rows.append(value.split())
            elif value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
                rows.append(None)
            else:
                raise DataError(f"tasks.{self.name}: column `{self.column}` row {i} holds {value!r}; a tagging "
                                f"label is a list of tags or a string of space-separated tags (B-X I-X O …)")
        return rows

    def _spans(self, labels: pd.Series) -> list[list[Span] | None]:
        out = []
        for i, row in zip(labels.index, self._rows(labels), strict=True):
            try:
                out.append(None if row is None else tags_to_spans(row))
            except ValueError as e:
                raise DataError(f"tasks.{self.name}: column `{self.column}` row {i}: {e}; use BIO or BIOES tags "
                                f"such as B-brand, I-brand, O") from None
        return out

    def fit(self, labels: pd.Series) -> None:
        seen = sorted({s[0] for row in self._spans(labels) if row for s in row})
        self.seen_types = seen
        if self.cfg.types:
            missing = [t for t in self.cfg.types if t not in seen]
            if missing:
                raise DataError(f"tasks.{self.name}.types: {missing} never occur in the training tags of column "
                                f"`{self.column}`; the types there are {seen}")
            self.types = list(self.cfg.types)
        else:
            self.types = seen
        if not self.types:
            raise DataError(f"tasks.{self.name}: the training tags in column `{self.column}` hold no span "
                            f"(every tag is O); a tagging task needs at least one B-/I- tag")
        self._index()

    def _index(self) -> None:
        self.tags = scheme_tags(self.types, self.cfg.scheme)
        self.tag_index = {t: i for i, t in enumerate(self.tags)}

    def state(self) -> dict[str, Any]:
        return {"types": self.types, "seen_types": self.seen_types}

    def load_state(self, state: dict[str, Any]) -> None:
        self.types, self.seen_types = state["types"], state["seen_types"]
        self._index()

    def unseen_labels(self, labels: pd.Series) -> list[Any]:
        present = {s[0] for row in self._spans(labels) if row for s in row}
        return sorted(present - set(self.seen_types))

    def encode(self, labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """Tag ids [N, max_len] in the task's scheme (−1 past each row's tokens) and which rows are labelled."""
        rows = self._spans(labels)
        targets = np.full((len(rows), self.width), -1, dtype=np.int64)
        mask = np.zeros(len(rows), dtype=bool)
        kept = set(self.types)
        for i, (spans, tags) in enumerate(zip(rows, self._rows(labels), strict=True)):
            if spans is None:
                continue
            length = min(len(tags), self.width)
            retagged = spans_to_tags([s for s in spans if s[0] in kept], length, self.cfg.scheme)
            targets[i, :length] = [self.tag_index[t] for t in retagged]
            mask[i] = length > 0
        return targets, mask

    def check(self, labels: pd.Series, token_counts: list[int]) -> None:
        """Every labelled row (`labels`, as `label_values` gives them) has one tag per token of the text feature."""
        for i, tags, n in zip(labels.index, self._rows(labels), token_counts, strict=True):
            if tags is not None and len(tags) != n:
                raise DataError(f"tasks.{self.name}: row {i} has {len(tags)} tags in `{self.column}` but "
                                f"{n} tokens in `{self.text_column}`; give one tag per token (pass the text as "
                                f"a token list, as token/tag files are read, to keep them aligned)")

    # ---- model
    @property
    def n_outputs(self) -> int:
        return len(self.tags)

    def head(self, in_dim: int, seq_dim: int | None = None, vocab: list[str] | None = None,
             first_id: int = 2) -> nn.Module:
        """`vocab`: the strings of the text feature's token ids `first_id`, … (for `window_features`)."""
        if seq_dim is None:
            raise TypeError("a tagging head reads the text encoder's per-token vectors: pass seq_dim")
        crf = CRF(len(self.tags), *allowed_transitions(self.tags, self.cfg.scheme)) if self.cfg.crf else None
        window = None
        if self.cfg.window_features:
            from ..features.windows import WindowEmissions

            window = WindowEmissions(vocab or [], len(self.tags), self.cfg.window_buckets, first_id)
        self._head = TaggingHead(in_dim, seq_dim, len(self.tags), crf, self.dropout, window)
        return self._head

    @staticmethod
    def _split(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return output[..., :-1], output[..., -1] > 0.5

    def row_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The CRF's negative log-likelihood of each row (or the row's summed token cross-entropy), averaged over
        rows (`loss_per: row`, the scale of the other tasks' per-row losses) or over tokens (`loss_per: token`)."""
        emissions, tokens = self._split(output)
        target = target[:, : emissions.shape[1]]
        valid = tokens[:, : target.shape[1]] & (target >= 0)
        emissions = emissions[:, : target.shape[1]]
        rows = valid[:, 0]
        if not bool(rows.any()):
            return output.sum() * 0.0
        per = valid.sum() if self.cfg.loss_per == "token" else rows.sum()
        if self._head is not None and self._head.crf is not None:
            ll = self._head.crf.log_likelihood(emissions[rows], target[rows], valid[rows])
            return -ll.sum() / per
        return F.cross_entropy(emissions[valid].float(), target[valid], reduction="sum") / per

    def predict(self, output: torch.Tensor) -> np.ndarray:
        """Tag ids [B, max_len], −1 past each row's tokens."""
        emissions, tokens = self._split(output.float())
        if self._head is not None and self._head.crf is not None:
            ids = self._head.crf.decode(emissions, tokens)
        else:
            ids = emissions.argmax(-1).masked_fill(~tokens, -1)
        out = np.full((ids.shape[0], self.width), -1, dtype=np.int64)
        width = min(self.width, ids.shape[1])
        out[:, :width] = ids[:, :width].cpu().numpy()
        return out

    # ---- evaluation and decoding
    def spans(self, ids: np.ndarray) -> list[list[Span]]:
        """Tag-id rows (−1 = no token) → spans per row."""
        return [tags_to_spans([self.tags[j] for j in row[row >= 0]]) for row in ids]

    def metrics(self, target: np.ndarray, pred: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
        out = span_scores(self.spans(target), self.spans(np.where(target >= 0, pred, -1)), self.types)
        if len(self.types) == 1:  # per type would repeat the micro figures
            out = {k: v for k, v in out.items() if k.startswith("span_")}
        tokens = target >= 0
        out["token_accuracy"] = float((pred[tokens] == target[tokens]).mean()) if tokens.any() else float("nan")
        return out

    def decode(self, pred: np.ndarray, context: tuple[list[Any], list[list[tuple[int, int]]]] | None = None
               ) -> dict[str, Any]:
        """{type: [(text, start, end), ...]} per row; with `context` (the rows' text and token offsets) the text
        and character offsets of each span, else token positions and no text."""
        rows = []
        for i, spans in enumerate(self.spans(pred)):
            found: dict[str, list[tuple[str | None, int, int]]] = {t: [] for t in self.types}
            for kind, start, end in spans:
                if context is None:
                    found[kind].append((None, start, end))
                else:
                    source, offsets = context[0][i], context[1][i]
                    found[kind].append(span_text(source, offsets, start, min(end, len(offsets))))
            rows.append(found)
        return {self.name: rows}
