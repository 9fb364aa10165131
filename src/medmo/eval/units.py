"""What an evaluation runs over: benchmarks and record sets, as `Unit`s.

A `Unit` is one row of results: its records (as dicts), how one response is scored and
how scored samples are aggregated. A registered benchmark brings its own rules
(medmo.eval.benchmarks); a file of unified records is scored by task (medmo.eval.tasks).
`select` applies --limit then --shard, so shards of a limited run add up to that run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from medmo.eval.tasks import aggregate_by_task, family_of, score_by_task

logger = logging.getLogger(__name__)


def parse_shard(shard: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in str(shard).split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4), got {shard!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {shard!r}: need 0 <= i < n")
    return i, n


@dataclass
class Unit:
    """One thing to evaluate and report as a row: a benchmark or a record set."""

    name: str
    kind: str  # "benchmark" | "records"
    family: str
    records: list[dict]  # record dicts (malformed rows carry "failure")
    score: Callable[[dict, str], dict]
    aggregate: Callable[[list[dict]], dict]
    version: str = ""
    base_dir: Path | None = None
    duplicates: int = 0  # records skipped because their id repeats an earlier one


def records_unit(name: str, rows: list[dict], *, base_dir=None, mode="strict", box_format="grid",
                 protocol="set") -> Unit:
    ok = [r for r in rows if not r.get("failure")]
    return Unit(name=name, kind="records", family=family_of(ok) if ok else "mixed", records=rows,
                score=lambda s, resp: score_by_task(s, resp, mode=mode, box_format=box_format, protocol=protocol),
                aggregate=aggregate_by_task, base_dir=Path(base_dir) if base_dir else None)


def benchmark_unit(name: str, data: str | None, mode: str, box_format: str | None) -> Unit:
    from medmo.eval.benchmarks import get_benchmark

    bench = get_benchmark(name)
    path = None
    if data is not None:
        root = Path(data)
        path = root / bench.default_data if bench.default_data and (root / bench.default_data).exists() else root
    rows = [r.to_dict() for r in bench.load(path)]

    def score(sample: dict, response: str) -> dict:
        if box_format is not None:  # the user's --box-format reaches the benchmark's scorer through the sample
            sample = {**sample, "box_format": box_format}
        return bench.score(sample, response, mode)

    return Unit(name=name, kind="benchmark", family=bench.family, records=rows, score=score,
                aggregate=bench.aggregate, version=bench.version, base_dir=path)


def select(rows: list[dict], limit: int | None, shard: str) -> list[dict]:
    i, n = parse_shard(shard)
    return (rows[:limit] if limit else rows)[i::n]


def unique_ids(name: str, rows: list[dict]) -> tuple[list[dict], int]:
    """Samples are keyed by id: a repeated id is evaluated once, and the repeats counted."""
    seen: set[str] = set()
    keep = [r for r in rows if not (str(r.get("id")) in seen or seen.add(str(r.get("id"))))]
    if len(keep) != len(rows):
        logger.warning("%s: %d record(s) repeat an earlier id and are skipped", name, len(rows) - len(keep))
    return keep, len(rows) - len(keep)
