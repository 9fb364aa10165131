"""A name -> object registry with "did you mean" errors (lm-eval style).

Used for data sources, benchmarks, reward terms and suites, so an unknown name always
fails with the closest valid names and the full list.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """`discover`: a package whose modules register themselves; they are imported on the
    first lookup, so adding a file to the package is all it takes to register."""

    def __init__(self, kind: str, discover: str | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._package = discover

    def _load(self) -> None:
        package, self._package = self._package, None
        if package is None:
            return
        for mod in pkgutil.iter_modules(importlib.import_module(package).__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{package}.{mod.name}")

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            raise ValueError(unknown_name_message(self.kind, name, self._items))
        return self._items[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._items)


def unknown_name_message(kind: str, name: str, valid) -> str:
    """ "Unknown benchmark 'vqarad'. Did you mean 'vqa_rad'? Available: ..." """
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Available: {', '.join(valid)}"
