"""Registry of public dataset converters: one file per source, raw release -> Records.

A source file defines a converter and registers it:

    @register_source("vqa_rad", tasks=("vqa",), modality="mixed")
    def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
        ...

`raw` is what the user points at (the release's folder or its main file). A converter
yields good records and, for every item it cannot convert, calls
`drops.add(reason, detail)` instead of raising, so a long conversion never stops on one
bad item and every skip is counted by reason. Each row's work runs inside
`with drops.guard(where):`, which turns any exception the row raises (a row that is not
an object, a field of the wrong type, bad UTF-8, a NUL byte in a path) into a drop
counted by reason with the row's position, so a hostile row can never end the run. A
wrong `raw` path or format raises FileNotFoundError/ValueError at once (outside the
guarded row bodies), saying what was expected.

Every module in this package is imported on the first lookup, so adding a file is all it
takes to register a source.
"""
from __future__ import annotations

import csv
import logging
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from medmo.data.schema import Record
from medmo.registry import Registry

Converter = Callable[..., Iterator[Record]]
log = logging.getLogger(__name__)
MAX_DETAIL = 300  # characters of an example kept: a hostile row may be megabytes


def row_reason(e: BaseException) -> str:
    """The drop reason for an exception raised while converting one row."""
    if isinstance(e, UnicodeError):
        return "bad_encoding"
    if isinstance(e, ValueError) and ("null byte" in str(e) or "null character" in str(e)):
        return "bad_path"  # os/pathlib: "embedded null byte"; "embedded null character"
    if isinstance(e, KeyError):
        return "missing_field"
    if isinstance(e, (TypeError, AttributeError)):
        return "bad_field_type"
    if isinstance(e, ValueError):
        return "bad_value"
    return "row_error"


def printable(text: str) -> str:
    """`text` cut to MAX_DETAIL characters and safe to write as UTF-8 (lone surrogates escaped)."""
    text = text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def csv_rows(reader: Iterator, name: str, drops: "Drops | None" = None) -> Iterator:
    """The rows of a csv reader; a row the csv module refuses (a field over its size limit)
    is counted in `drops` as "malformed_csv_row" and skipped (without `drops`, it comes back
    as {"_malformed": ..., "_reason": "malformed_csv_row"} for `_qa.keep` to count), and
    reading goes on with the next line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            detail = f"{name}: near line {getattr(reader, 'line_num', '?')}: {e}"
            if drops is None:
                yield {"_malformed": detail, "_reason": "malformed_csv_row"}
            else:
                drops.add("malformed_csv_row", detail)


def check_utf8(value: Any) -> None:
    """Raise UnicodeEncodeError when a string in `value` (nested dicts/lists too) is not valid
    UTF-8: a lone surrogate from a `\\ud800` escape or from bytes read with surrogateescape."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_utf8(k)
            check_utf8(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            check_utf8(v)


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
            ex.append(printable(detail))

    @contextmanager
    def guard(self, where: str) -> Iterator[None]:
        """Count an exception raised by one row's work as a drop (reason from `row_reason`)
        instead of letting it end the conversion; the first few per reason are logged."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 - any row-level failure is a counted drop
            reason = row_reason(e)
            if self.counts[reason] < self.max_examples:
                log.warning("dropped %s (%s): %s", printable(where), reason, printable(f"{type(e).__name__}: {e}"))
            self.add(reason, f"{where}: {type(e).__name__}: {e}")

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
    licence: str = "see the docstring"  # the release's licence, as its authors state it
    url: str = ""  # where to get the release
    splits: tuple[tuple[str, int], ...] = ()  # published records per split ((split, count), ...), () if unknown
    importer: bool = False  # a generic format (COCO, YOLO, masks), not a named dataset


SOURCES: Registry[Source] = Registry("data source", discover=__name__)


def register_source(name: str, tasks: tuple[str, ...], modality: str = "mixed", *, licence: str = "see the docstring",
                    url: str = "", splits: dict[str, int] | None = None,
                    importer: bool = False) -> Callable[[Converter], Converter]:
    """Register a converter with what `medmo data sources` lists about its release."""
    def deco(fn: Converter) -> Converter:
        import sys

        doc = (sys.modules[fn.__module__].__doc__ or "").strip()
        SOURCES.add(name, Source(name, fn, tuple(tasks), modality, doc, licence, url, tuple((splits or {}).items()),
                                 importer))
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
