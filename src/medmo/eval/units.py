"""What an evaluation runs over: benchmarks and record sets, as `Unit`s.

A `Unit` is one row of results: its records (as dicts), how one response is scored and
how scored samples are aggregated. A registered benchmark brings its own rules
(medmo.eval.benchmarks); a file of unified records is scored by task (medmo.eval.tasks).
`select` applies --limit then --shard, so shards of a limited run add up to that run.

`plan` turns the units into the run's `Plan`: each unit cut to --limit and this shard
(`select`), repeated ids dropped (`unique_ids`), and the items still to do given what
samples.jsonl already holds: a sample without "failure" is done (resume recomputes
nothing); with a judge, a done sample whose judge fell back is an item again, with its
saved response (the judge is asked again, the model is not).

Generation budget per answer (`max_new_tokens`, when the run does not set one): large
enough that a reasoning model (Qwen3-VL Thinking, MedMO's reasoning variants, o-series
behind the openai backend) finishes thinking before it answers; a non-reasoning model
stops at its end-of-turn token long before, so the budget costs nothing there. A cut
answer is counted per benchmark ("cut_at_max_new_tokens") either way.
- vqa, grounding: 4096: closed/open questions and boxes need short thinking.
- textqa, report: 8192, the value MedEvalKit's eval.sh sets for every benchmark: exam questions
  (MedQA, MedXpertQA, SuperGPQA) draw long chains of thought, and a report is written
  after thinking about the whole image.
- mmmu_med, medxpertqa_mm: 8192: exam-style multimodal reasoning, as textqa.
- `--protocol paper`: 8192 everywhere, as MedEvalKit's eval.sh (eval.py's own default is 1024).
Departure from MedEvalKit: by default medmo halves its 8192 where answers are short,
because an hf batch runs until its longest row ends and a looping answer in a batch of
short ones would otherwise cost 8192 steps.

`--protocol paper` loads each benchmark with its `paper_options` (e.g. MMMU-Med in MMMU's
own layout with the first image); a unit remembers whether its set is the paper's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from medmo.eval.options import ScoringOptions
from medmo.eval.samples import Sample, sample_key
from medmo.eval.tasks import aggregate_by_task, family_of, score_by_task

logger = logging.getLogger(__name__)
MAX_NEW_TOKENS = {"vqa": 4096, "grounding": 4096, "textqa": 8192, "report": 8192, "mixed": 8192}
MAX_NEW_TOKENS_OF = {"mmmu_med": 8192, "medxpertqa_mm": 8192}  # benchmarks that differ from their family
PAPER_MAX_NEW_TOKENS = 8192  # MedEvalKit's budget (MAX_NEW_TOKENS in its eval.sh), the paper protocol's


def default_max_new_tokens(name: str, family: str, protocol: str = "default") -> int:
    """The generation budget of a benchmark (or a record set of `family`) when the run sets none."""
    if protocol == "paper":
        return PAPER_MAX_NEW_TOKENS
    return MAX_NEW_TOKENS_OF.get(name, MAX_NEW_TOKENS.get(family, MAX_NEW_TOKENS["mixed"]))


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
    score: Callable[[dict, str, ScoringOptions], dict]  # (record, response, options) -> scored fields
    aggregate: Callable[[list[dict]], dict]
    options: ScoringOptions = ScoringOptions()  # passed to `score` with every response
    version: str = ""
    base_dir: Path | None = None
    duplicates: int = 0  # records skipped because their id repeats an earlier one
    max_new_tokens: int | None = None  # generation budget per answer; None = the backend's own
    paper_set: str | None = None  # None: the paper's item set and layout; else how this set differs


def records_unit(name: str, rows: list[dict], *, base_dir=None, options: ScoringOptions = ScoringOptions(),
                 max_new_tokens: int | None = None) -> Unit:
    ok = [r for r in rows if not r.get("failure")]
    return Unit(name=name, kind="records", family=family_of(ok) if ok else "mixed", records=rows,
                score=score_by_task, aggregate=aggregate_by_task, options=options,
                base_dir=Path(base_dir) if base_dir else None,
                max_new_tokens=max_new_tokens, paper_set="a record set, not a published benchmark")


def benchmark_unit(name: str, data: str | None, mode: str, box_format: str | None, *, protocol: str = "default",
                   grounding_protocol: str | None = None, max_new_tokens: int | None = None) -> Unit:
    """A registered benchmark's unit; `protocol="paper"` loads it with the paper's options.

    `mode`, `box_format` and `grounding_protocol` are its ScoringOptions (medmo.eval.options)."""
    from medmo.eval.benchmarks import get_benchmark

    bench = get_benchmark(name)
    path = None
    if data is not None:
        root = Path(data)
        path = root / bench.default_data if bench.default_data and (root / bench.default_data).exists() else root
    options = dict(bench.paper_options) if protocol == "paper" else {}
    rows = [r.to_dict() for r in bench.load(path, **options)]
    differs = None
    if bench.paper_options and protocol != "paper":
        differs = "not the paper's layout (" + ", ".join(f"{k}={v}" for k, v in bench.paper_options.items()) + \
                  " under --protocol paper)"
    return Unit(name=name, kind="benchmark", family=bench.family, records=rows, score=bench.score,
                aggregate=bench.aggregate, options=ScoringOptions(mode, box_format, grounding_protocol),
                version=bench.version, base_dir=path,
                max_new_tokens=max_new_tokens or default_max_new_tokens(name, bench.family, protocol),
                paper_set=differs)


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


@dataclass
class Item:
    """One record of a unit still to evaluate; `saved` is its finished sample when only the judge is asked again."""

    unit: Unit
    record: dict
    saved: Sample | None = None


@dataclass
class Plan:
    """What a run evaluates: its units (cut to --limit and this shard) and the items still to do."""

    units: list[Unit]
    items: list[Item]
    done: int  # samples of these units already finished in samples.jsonl

    @property
    def new(self) -> int:
        """Items the model is asked about (the others are only judged again)."""
        return sum(it.saved is None for it in self.items)

    def chunks(self, size: int) -> Iterator[list[Item]]:
        """The items in runs of at most `size`, one unit per run (a run's images are in memory at once)."""
        for unit in self.units:
            mine = [it for it in self.items if it.unit is unit]
            for start in range(0, len(mine), size):
                yield mine[start:start + size]


def plan(units: list[Unit], latest: dict[tuple[str, str], Sample], *, limit: int | None = None, shard: str = "0/1",
         rejudge: bool = False) -> Plan:
    """The run's plan over `latest` (samples.jsonl's last sample per key; module docstring)."""
    items, done = [], 0
    for unit in units:
        unit.records, unit.duplicates = unique_ids(unit.name, select(unit.records, limit, shard))
        for rec in unit.records:
            saved = latest.get(sample_key(unit.name, rec))
            if saved is None or saved.get("failure"):
                items.append(Item(unit, rec))
                continue
            done += 1
            if rejudge and str(saved.get("judge_status", "")).startswith("judge_"):
                items.append(Item(unit, rec, saved))
    return Plan(units, items, done)
