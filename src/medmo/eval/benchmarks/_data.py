"""Where a benchmark's data comes from, and its conversion into records (shared by the QA,
report and grounding families; not a benchmark: the leading underscore keeps it out of
the registry).

`resolve_data` takes the user's --data, else the benchmark's default under
$MEDMO_SHARED_DATA (tests/conftest.py points it at ../shared/data). `convert_records` runs a
converter, logs the items it skipped by reason, and refuses a benchmark with none left.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Iterable

from medmo.data.schema import Record
from medmo.data.sources import Drops

logger = logging.getLogger(__name__)

def resolve_data(name: str, data: str | Path | None, default: str | None, expected: str) -> Path:
    """The user's --data, else `default` under $MEDMO_SHARED_DATA (a folder of benchmark
    releases, e.g. the test fixtures' ../shared/data)."""
    if data is not None:
        return Path(data)
    root = os.environ.get("MEDMO_SHARED_DATA")
    if default and root and (Path(root) / default).exists():
        return Path(root) / default
    raise FileNotFoundError(f"benchmark {name}: no data given; pass --data PATH pointing at {expected}"
                            + (f" (or set MEDMO_SHARED_DATA to a folder holding {default})" if default else ""))


def convert_records(name: str, path: Path, convert: Callable[[Path, Drops], Iterable[Record]], expected: str,
                    what: str = "items") -> list[Record]:
    """`convert(path, drops)` as a list; skipped items are logged by reason, an empty result is an error."""
    drops = Drops()
    records = list(convert(path, drops))
    if drops.total:
        logger.warning("%s: %d item(s) skipped or fixed while loading %s: %s", name, drops.total, path,
                       dict(drops.counts))
    if not records:
        raise ValueError(f"benchmark {name}: no {what} found in {path}; expected {expected}")
    return records
