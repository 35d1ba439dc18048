"""Name → component registries (architectures, balancers, task types, readers), as `shopmtl list` shows them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

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


class NoOptions(BaseModel):
    """The options of a component that takes none."""

    model_config = ConfigDict(extra="forbid")


def parse_options(options: dict[str, Any], schema: type[BaseModel], section: str, component: str,
                  known: set[str]) -> BaseModel:
    """Extra keys of a config section → the chosen component's typed options (`known`: section fields, for hints).

    An unknown key is named with the closest known one; a wrong value names the field and what it must be."""
    accepted = set(schema.model_fields)
    for key in options:
        if key not in accepted:
            raise ConfigError(f"{section}.{key}: not an option of {component};{did_you_mean(key, known | accepted)}")
    try:
        return schema.model_validate(options)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{section}.{loc}: {err['msg']} (an option of {component}: "
                          f"{schema.model_fields[str(err['loc'][0])].description or 'see shopmtl list'})") from None


def describe_options(schema: type[BaseModel]) -> str:
    """`name=default` for each option, as `shopmtl list` shows them."""
    return ", ".join(f"{n}={f.default!r}" if f.default_factory is None else n for n, f in schema.model_fields.items())
