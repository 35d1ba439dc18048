"""Tokenisation for English and Chinese text: English words and numbers, single CJK characters, punctuation.

Text may also arrive already tokenised (a list of tokens per row, as token/tag files give it); then the tokens are
used as they are, so that a tagging task's tags stay aligned with them."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_AUTO = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
_WORDS = re.compile(r"[^\W_]+|[^\w\s]")
_CHARS = re.compile(r"\S")


def is_tokens(value: Any) -> bool:
    """A row that is already tokenised (a list, tuple or array of tokens)."""
    return isinstance(value, list | tuple | np.ndarray)


def token_spans(text: str, mode: str = "auto") -> list[tuple[str, int, int]]:
    """(token, start, end) with character offsets into `text` (end exclusive), before lowercasing."""
    if not isinstance(text, str):
        return []
    pattern = {"chars": _CHARS, "words": _WORDS}.get(mode, _AUTO)
    return [(m.group(), m.start(), m.end()) for m in pattern.finditer(text)]


def tokenize(text: Any, mode: str = "auto", lowercase: bool = True) -> list[str]:
    """'Love it!好看' → ['love', 'it', '!', '好', '看'] in `auto` mode; `chars` splits every non-space character.
    A row that is already a token list is kept as it is (lowercased if asked)."""
    if is_tokens(text):
        tokens = [str(t) for t in text]
    else:
        tokens = [t for t, _, _ in token_spans(text, mode)]
    return [t.lower() for t in tokens] if lowercase else tokens


def join_tokens(tokens: list[str]) -> str:
    """Tokens as text: without spaces where every token is one character (Chinese), else space-separated."""
    return ("" if all(len(t) == 1 for t in tokens) else " ").join(tokens)


def span_text(source: Any, offsets: list[tuple[int, int]], start: int, end: int) -> tuple[str, int, int]:
    """Tokens `start:end` of a row as (text, start, end): a substring with character offsets for raw text; the
    tokens joined (no space between single characters) with token positions for a row that came tokenised."""
    if isinstance(source, str):
        lo, hi = offsets[start][0], offsets[end - 1][1]
        return source[lo:hi], lo, hi
    return join_tokens([str(t) for t in source[start:end]]), start, end


def token_offsets(value: Any, mode: str = "auto") -> list[tuple[int, int]]:
    """Where each token of a row lies: character offsets into raw text; token positions for a tokenised row."""
    if is_tokens(value):
        return [(i, i + 1) for i in range(len(value))]
    return [(s, e) for _, s, e in token_spans(value, mode)]
