"""User-facing errors: every problem a user can fix is raised as a ShopMTLError with the fix in its message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ShopMTLError(Exception):
    """A problem with the user's input (config, data, request). The CLI prints it and exits with code 2."""


class ConfigError(ShopMTLError):
    """A config field is wrong; the message names the field and how to fix it."""


class DataError(ShopMTLError):
    """A data file or column is wrong; the message names the file, column or row."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates that look most like `name` (for 'did you mean' hints)."""
    candidates = list(candidates)
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not found:
        lowered = {c.lower(): c for c in candidates}
        found = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)]
    return found


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' did you mean `x`?' suffix, or a list of what exists when nothing is close."""
    candidates = sorted(set(candidates))
    near = closest(name, candidates)
    if near:
        return " did you mean " + " or ".join(f"`{c}`" for c in near) + "?"
    shown = ", ".join(f"`{c}`" for c in candidates[:25])
    more = f" (and {len(candidates) - 25} more)" if len(candidates) > 25 else ""
    return f" available: {shown}{more}."
