"""samples.jsonl, the evaluation's durable log, and lenient reading of record files.

`SampleLog` appends one JSON line per finished sample and flushes after every chunk, so
an interrupted run loses at most the chunk in flight. On reading, the last line for a
(benchmark, id) key wins and a line cut off by a crash is skipped (that sample simply
runs again); before its first append the file is healed (medmo.data.shards.heal_jsonl:
the torn last line is cut off, with a warning), so the next sample never merges with it. `done` holds the keys that need no more work: samples without "failure".

`read_record_rows` reads a .jsonl or .parquet of unified records without stopping at a
bad row: a row that is not JSON or not a valid record becomes {"id": "<file>:<line>",
"failure": "malformed_row", "error": ...}, counted in the results like any other failure.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from medmo.data.schema import validate_record
from medmo.data.shards import heal_jsonl

logger = logging.getLogger(__name__)


def sample_key(unit: str, rec: dict) -> tuple[str, str]:
    return unit, str(rec.get("id"))


class SampleLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._latest = self._read()
        self.done = {k for k, s in self._latest.items() if not s.get("failure")}
        self._healed = False

    def _read(self) -> dict[tuple[str, str], dict]:
        latest: dict[tuple[str, str], dict] = {}
        if not self.path.exists():
            return latest
        bad = 0
        with self.path.open("rb") as f:  # bytes: a line cut inside a UTF-8 character fails alone
            for line in f:
                try:
                    s = json.loads(line)
                    latest[sample_key(s["benchmark"], s)] = s
                except (ValueError, KeyError, TypeError):
                    bad += 1
        if bad:
            logger.warning("%s: %d unreadable line(s) skipped (an interrupted write); those samples run again",
                           self.path, bad)
        return latest

    def extend(self, samples: Iterable[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._healed:
            heal_jsonl(self.path)
            self._healed = True
        with self.path.open("ab") as f:
            for s in samples:
                f.write(_line(s))
                key = sample_key(s["benchmark"], s)
                self._latest[key] = s
                if not s.get("failure"):
                    self.done.add(key)
            f.flush()

    def latest(self) -> dict[tuple[str, str], dict]:
        return dict(self._latest)

    def by_unit(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = defaultdict(list)
        for (unit, _), s in self._latest.items():
            out[unit].append(s)
        return dict(out)


def _line(sample: dict) -> bytes:
    """One JSON line, readable UTF-8; a lone surrogate (a "\\ud800" escape in the input)
    cannot be UTF-8, so such a sample is written with \\u escapes instead (same value on reading)."""
    try:
        return (json.dumps(sample, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(sample, default=str) + "\n").encode("ascii")


def _malformed(path: Path, line: int, error: str) -> dict:
    return {"id": f"{path.name}:{line}", "task": None, "failure": "malformed_row", "error": error}


def read_record_rows(path: str | Path, need_response: bool = False) -> list[dict]:
    """Record dicts from a .jsonl/.parquet file; bad rows kept as counted failures."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such records file")
    if path.suffix == ".parquet":
        from medmo.data.schema import iter_parquet

        raw = [(i, json.dumps(d, default=str)) for i, d in enumerate(iter_parquet(path), 1)]
    else:
        raw = list(enumerate(path.read_bytes().split(b"\n"), 1))  # bytes: a bad one spoils its line only
    rows = []
    for i, line in raw:
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict):
                raise ValueError("a line must be one JSON object (a record)")
            validate_record(d)
            if need_response and not isinstance(d.get("response"), str):
                raise ValueError('no "response" string (the model\'s raw answer) on this line')
        except (ValueError, TypeError, AttributeError, RecursionError) as e:
            logger.warning("%s:%d: malformed row skipped: %s", path, i, e)
            rows.append(_malformed(path, i, str(e)))
            continue
        rows.append(d)
    if not rows:
        raise ValueError(f"{path}: no records in the file")
    return rows
