"""Name → component registries (architectures, balancers, task types, readers), as `shopmtl list` shows them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import ConfigError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    summary: str


class Registry(Generic[T]):
    """A named collection of components; `register` is a decorator, `get` explains unknown names."""

    def __init__(self, kind: str, field: str):
        self.kind = kind  # e.g. "architecture"
        self.field = field  # the config field that names one, e.g. "model.architecture"
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, summary: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} `{name}` is registered twice")
            self._entries[name] = Entry(name, obj, summary)
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"{self.field}: unknown {self.kind} `{name}`;{did_you_mean(name, self._entries)}")
        return self._entries[name].obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def check_options(options: dict, accepted: dict[str, str], section: str, component: str, known: set[str]) -> None:
    """Extra keys of a config section must be options the chosen component accepts (`known`: for hints)."""
    for key in options:
        if key not in accepted:
            raise ConfigError(f"{section}.{key}: not an option of {component};{did_you_mean(key, known | set(accepted))}")
