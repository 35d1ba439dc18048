"""Tokenisation for English and Chinese text: English words and numbers, single CJK characters, punctuation."""

from __future__ import annotations

import re

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_AUTO = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
_WORDS = re.compile(r"[^\W_]+|[^\w\s]")


def tokenize(text: str, mode: str = "auto", lowercase: bool = True) -> list[str]:
    """'Love it!好看' → ['love', 'it', '!', '好', '看'] in `auto` mode; `chars` splits every non-space character."""
    if not isinstance(text, str):
        return []
    if lowercase:
        text = text.lower()
    if mode == "chars":
        return [c for c in text if not c.isspace()]
    return (_AUTO if mode == "auto" else _WORDS).findall(text)
