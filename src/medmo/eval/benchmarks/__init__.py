"""Registry of benchmarks: one small file per benchmark (lighteval style).

A benchmark file registers a `Benchmark`:

    BENCHMARKS.add("vqa_rad", Benchmark(
        name="vqa_rad", family="vqa", version="1",
        load=load,            # (data: Path | None) -> list[Record], prompts rendered, answer filled
        score=score,          # (sample: dict, response: str, mode: str) -> dict
        aggregate=aggregate,  # (samples: list[dict]) -> dict of metrics (fractions in [0, 1])
        default_data="vqa_rad",  # folder name under ../shared/data or the user's --data
        box_format="grid",    # grounding only: how responses write coordinates
    ))

`score` gets the sample (the record as a dict, plus "response") and returns at least
{"parsed": ...} and "correct" (bool, accuracy tasks) and/or "score" (float). An open
answer that a judge should decide also returns "judge": {"question", "reference",
"response"}; the runner asks the judge when one is configured and sets "correct" from
its verdict. `mode` is "strict" (default) or "medevalkit" (see medmo.eval.scoring).

Every module in this package is imported on the first lookup.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from medmo.data.schema import Record
from medmo.registry import Registry

FAMILIES = ("vqa", "textqa", "report", "grounding")


@dataclass(frozen=True)
class Benchmark:
    name: str
    family: str
    load: Callable[[Path | None], list[Record]]
    score: Callable[[dict, str, str], dict[str, Any]]
    aggregate: Callable[[list[dict]], dict[str, Any]]
    version: str = "1"
    default_data: str | None = None
    box_format: str = "grid"
    description: str = ""

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"benchmark {self.name}: family {self.family!r} is not one of {FAMILIES}")


BENCHMARKS: Registry[Benchmark] = Registry("benchmark", discover=__name__)

def get_benchmark(name: str) -> Benchmark:
    return BENCHMARKS.get(name)


def benchmark_names(family: str | None = None) -> list[str]:
    return [n for n in BENCHMARKS.names() if family is None or BENCHMARKS.get(n).family == family]
