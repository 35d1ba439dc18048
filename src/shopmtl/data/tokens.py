"""Readers for token/tag files: CoNLL-style columns (one token per line, a blank line between sentences), the
character-per-line BIO files of the Taobao product-title NER corpus, and QueryNER's JSON.

Every reader gives one row per sentence: `tokens` and `tags` (lists, one tag per token), `text` (the tokens
joined: without spaces where every token is one character, as in Chinese titles), and `split` from the file's
name (train / valid / test; `split_of:` maps other names) for `data.split: {by: column, column: split}`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError
from .readers import READERS, Reader
from .text import join_tokens

SPLIT_OF = {"train": "train", "training": "train", "dev": "valid", "valid": "valid", "validation": "valid",
            "val": "valid", "test": "test", "testing": "test"}


def _split_of(path: Path, options: dict[str, Any]) -> str:
    mapping = {**SPLIT_OF, **{str(k): str(v) for k, v in (options.get("split_of") or {}).items()}}
    split = mapping.get(path.stem.lower(), mapping.get(path.stem))
    if split not in ("train", "valid", "test"):
        raise DataError(f"{path}: cannot tell which split the file `{path.name}` holds; name it train / dev / "
                        f"test, or map it with data.source.options.split_of: {{{path.stem}: train}}")
    return split


def _files(path: Path, pattern: str) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted(p for p in path.glob(pattern) if p.is_file())
    if not found:
        raise DataError(f"{path}: no file matching `{pattern}`; set data.source.options.files to their pattern")
    return found


def conll_sentences(path: Path, token_column: int = 0, tag_column: int = -1, separator: str | None = None,
                    encoding: str = "utf-8-sig") -> Iterator[tuple[list[str], list[str]]]:
    """(tokens, tags) per sentence of a CoNLL-style file; `-DOCSTART-` lines are skipped."""
    tokens: list[str] = []
    tags: list[str] = []
    try:
        with open(path, encoding=encoding, newline="") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    if tokens:
                        yield tokens, tags
                    tokens, tags = [], []
                    continue
                fields = line.split(separator) if separator else line.split()
                if fields[0] == "-DOCSTART-":
                    continue
                try:
                    tokens.append(fields[token_column])
                    tags.append(fields[tag_column])
                except IndexError:
                    raise DataError(f"{path}:{number}: {line!r} has {len(fields)} field(s); expected a token in "
                                    f"column {token_column} and a tag in column {tag_column} (set "
                                    f"data.source.options.token_column / tag_column / separator)") from None
                if len(fields) < 2:
                    raise DataError(f"{path}:{number}: {line!r} holds a token without a tag; each line must be "
                                    f"`token tag` (set data.source.options.separator if fields are not split by "
                                    f"whitespace)")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not readable as {encoding} ({e.reason}); set data.source.options.encoding") from None
    if tokens:
        yield tokens, tags


def _table(rows: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    if not rows:
        raise DataError(f"{path}: no sentence was read (is the file empty?)")
    df = pd.DataFrame(rows)
    df["text"] = df["tokens"].map(join_tokens)
    return df


def read_conll(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    rows = []
    for file in _files(path, options.get("files", "*.txt")):
        split = _split_of(file, options) if path.is_dir() else options.get("split", "train")
        for tokens, tags in conll_sentences(file, int(options.get("token_column", 0)),
                                            int(options.get("tag_column", -1)), options.get("separator"),
                                            options.get("encoding", "utf-8-sig")):
            rows.append({"tokens": tokens, "tags": tags, "split": split, "file": file.name})
    return _table(rows, path)


CONLL_OPTIONS = {
    "files": "file pattern in the folder (default *.txt)",
    "token_column": "field index of the token (default 0)",
    "tag_column": "field index of the tag (default -1, the last)",
    "separator": "field separator (default: any whitespace)",
    "encoding": "file encoding (default utf-8, with or without BOM)",
    "split_of": "file stem → split, e.g. {dev: test} (default: train/dev/test by name)",
    "split": "the split of a single file given as the path (default train)",
}

READERS.register("conll", "token/tag files, CoNLL style (one token per line, blank line between sentences)")(
    Reader(folder="conll", read=read_conll, options=CONLL_OPTIONS))
def read_taobao_ner(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    """Fields split by one space: a title's characters include whitespace such as U+3000, tagged like any other."""
    return read_conll(path, {"separator": " ", **options}, limit)


READERS.register("taobao_ner", "Taobao product-title NER: one character and its BIO tag per line")(
    Reader(folder="taobao_ecommerce_ner", read=read_taobao_ner, options=CONLL_OPTIONS))


def read_queryner(path: Path, options: dict[str, Any], limit: int | None) -> pd.DataFrame:
    """QueryNER-style JSON: {"examples": [{"tokens": [...], "ner_tags": [int, ...]}]} with the tag names in
    `label_names.json` beside the files."""
    names_file = (path if path.is_dir() else path.parent) / options.get("label_names", "label_names.json")
    if not names_file.is_file():
        raise DataError(f"{names_file}: the tag names are missing (a JSON list, tag id → name); set "
                        f"data.source.options.label_names")
    names = json.loads(names_file.read_text(encoding="utf-8"))
    rows = []
    for file in _files(path, options.get("files", "*.json")):
        if file.name == names_file.name:
            continue
        split = _split_of(file, options) if path.is_dir() else options.get("split", "train")
        try:
            examples = json.loads(file.read_text(encoding="utf-8"))["examples"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{file}: not a QueryNER file ({e}); expected {{\"examples\": [{{\"tokens\": [...], "
                            f"\"ner_tags\": [...]}}]}}") from None
        for i, ex in enumerate(examples):
            try:
                tags = [names[t] for t in ex["ner_tags"]]
            except (IndexError, KeyError, TypeError):
                raise DataError(f"{file}: example {i} has a tag id outside {names_file.name}'s "
                                f"{len(names)} names, or lacks tokens / ner_tags") from None
            rows.append({"tokens": list(ex["tokens"]), "tags": tags, "split": split, "file": file.name})
    return _table(rows, path)


READERS.register("queryner", "QueryNER shopping-query JSON (tokens + integer tags, names in label_names.json)")(
    Reader(folder="queryner", read=read_queryner,
           options={"files": "file pattern (default *.json)", "label_names": "tag names file (default "
                    "label_names.json)", "split_of": CONLL_OPTIONS["split_of"], "split": CONLL_OPTIONS["split"]}))
