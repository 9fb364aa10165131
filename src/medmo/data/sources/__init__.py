"""Registry of public dataset converters: one file per source, raw release -> Records.

A source file defines a converter and registers it:

    @register_source("vqa_rad", tasks=("vqa",), modality="mixed")
    def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
        ...

`raw` is what the user points at (the release's folder or its main file). A converter
yields good records and, for every item it cannot convert, calls
`drops.add(reason, detail)` instead of raising, so a long conversion never stops on one
bad item and every skip is counted by reason. A wrong `raw` path or format raises
FileNotFoundError/ValueError at once, saying what was expected.

Every module in this package is imported on the first lookup, so adding a file is all it
takes to register a source.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from medmo.data.schema import Record
from medmo.registry import Registry

Converter = Callable[..., Iterator[Record]]


@dataclass
class Drops:
    """Items skipped during a conversion, counted by reason, with a few examples each."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 5

    def add(self, reason: str, detail: str = "") -> None:
        self.counts[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if detail and len(ex) < self.max_examples:
            ex.append(detail)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict:
        return {"total": self.total, "by_reason": dict(self.counts), "examples": self.examples}


@dataclass(frozen=True)
class Source:
    name: str
    convert: Converter
    tasks: tuple[str, ...]
    modality: str
    doc: str


SOURCES: Registry[Source] = Registry("data source", discover=__name__)


def register_source(name: str, tasks: tuple[str, ...], modality: str = "mixed") -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        import sys

        doc = (sys.modules[fn.__module__].__doc__ or "").strip()
        SOURCES.add(name, Source(name, fn, tuple(tasks), modality, doc))
        return fn

    return deco


def get_source(name: str) -> Source:
    return SOURCES.get(name)


def source_names() -> list[str]:
    return SOURCES.names()


def require_path(raw: str | Path, what: str) -> Path:
    """The raw path, or a FileNotFoundError saying what the source expected there."""
    p = Path(raw)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; expected {what}")
    return p
