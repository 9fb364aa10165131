"""Shared plumbing for the VQA and text-QA benchmarks (not a benchmark: the leading
underscore keeps it out of the registry).

`register_qa` turns a data source plus a few choices (split, filter, subgroup keys) into a
registered `Benchmark`: `load` runs the source's converter (records already carry the
prompt, MedEvalKit's wording; medmo.model.prompts lists where it differs), `score` calls medmo.eval.scoring in the
requested mode, and `aggregate` reports accuracy, closed/open accuracy, parse failures and
per-subgroup accuracy. The benchmark version carries the prompt version ("1.p1") so a
prompt change shows up in results.json. Keyword arguments of `load` beyond the data path
(e.g. mmmu_med's `layout="mmmu"`) go to the source's converter; the card fields (size,
subsets, source, licence, size_checked, paper_options) go to the `Benchmark`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from medmo.data.schema import Record
from medmo.data.sources import Drops, get_source
from medmo.eval.benchmarks import BENCHMARKS, Benchmark
from medmo.eval.benchmarks._data import convert_records, resolve_data
from medmo.eval.options import ScoringOptions
from medmo.eval.scoring import aggregate_qa, score_record
from medmo.model.prompts import PROMPT_VERSION


def register_qa(name: str, *, family: str, source: str, expected: str, split: str | None = None,
                default_data: str | None = None, keep: Callable[[Record], bool] | None = None,
                groups: tuple[str, ...] = (), closed_by: str = "answer", description: str = "",
                version: str = "1", **card: Any) -> Benchmark:
    """Register one benchmark built on data source `source` (see the module docstring).

    `closed_by="yes_no"` reproduces MedEvalKit's closed/open split for VQA-RAD and
    PathVQA in medevalkit mode; strict mode always uses the dataset's own split.
    """

    def load(data: Path | None = None, **options: Any) -> list[Record]:
        def convert(path: Path, drops: Drops):
            return (r for r in get_source(source).convert(path, drops, split, **options) if keep is None or keep(r))

        return convert_records(name, resolve_data(name, data, default_data, expected), convert, expected, "questions")

    def score(sample: dict, response: str, options: ScoringOptions | str = "strict") -> dict[str, Any]:
        mode = ScoringOptions.of(options).mode
        question = (sample.get("meta") or {}).get("question")
        return score_record(sample["task"], sample["answer"], response, mode, question=question,
                            closed_by=closed_by if mode == "medevalkit" else "answer")

    def aggregate(samples: list[dict]) -> dict[str, Any]:
        return aggregate_qa(samples, groups)

    bench = Benchmark(name=name, family=family, load=load, score=score, aggregate=aggregate,
                      version=f"{version}.p{PROMPT_VERSION}", default_data=default_data, description=description,
                      **card)
    BENCHMARKS.add(name, bench)
    return bench
