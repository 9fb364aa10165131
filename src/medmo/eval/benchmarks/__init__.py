"""Registry of benchmarks: one small file per benchmark (lighteval style).

A benchmark file registers a `Benchmark` and declares what it is (the "card" the code
reads for `medmo eval --list`, coverage checks and reports):

    BENCHMARKS.add("vqa_rad", Benchmark(
        name="vqa_rad", family="vqa", version="1",
        load=load,            # (data: Path | None, **options) -> list[Record], prompts rendered
        score=score,          # (sample: dict, response: str, options: ScoringOptions | str) -> dict
        aggregate=aggregate,  # (samples: list[dict]) -> dict of metrics (fractions in [0, 1])
        default_data="vqa_rad",  # folder name under ../shared/data or the user's --data
        box_format="grid",    # grounding only: how responses write coordinates
        size=451,             # items in the published evaluation set (None: no fixed set)
        subsets={"lang": {"en": 1061, "zh": 1033}},  # meta key -> {value: items}, when it has parts
        url="https://...", licence="CC0", metric="accuracy",
        size_checked="shared/data/vqa_rad/testset.json",  # where `size` was checked; "unverified: why" if not
        paper_options={},     # load() options of the paper's protocol (mmmu_med: {"layout": "mmmu"})
    ))

`score` gets the sample (the record as a dict, plus "response") and returns at least
{"parsed": ...} and "correct" (bool, accuracy tasks) and/or "score" (float). An open
answer that a judge should decide also returns "judge": {"question", "reference",
"response"}; the runner asks the judge when one is configured and sets "correct" from
its verdict. `options` is a medmo.eval.options.ScoringOptions (mode, box format, grounding
protocol) or a bare mode name, "strict" or "medevalkit" (see medmo.eval.scoring).

`coverage(name, samples)` compares what was evaluated with the declared set: fewer
items, a missing subset (an MMLU file with 6 of the 9 subjects) or a population the
source could not confirm (records with meta["not_comparable"]) make the result partial,
and a partial result is never compared with a published number as if complete.

Every module in this package is imported on the first lookup.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from medmo.data.schema import Record
from medmo.registry import Registry

FAMILIES = ("vqa", "textqa", "report", "grounding")
HEADLINE = {"vqa": "accuracy", "textqa": "accuracy", "report": "rouge_l", "grounding": "mean_iou"}


@dataclass(frozen=True)
class Benchmark:
    name: str
    family: str
    load: Callable[..., list[Record]]
    score: Callable[..., dict[str, Any]]  # (sample, response, options: ScoringOptions | str)
    aggregate: Callable[[list[dict]], dict[str, Any]]
    version: str = "1"
    default_data: str | None = None
    box_format: str = "grid"
    description: str = ""
    size: int | None = None
    subsets: dict[str, dict[str, int]] = field(default_factory=dict)
    url: str = ""  # where the published set comes from
    licence: str = ""
    metric: str = ""
    size_checked: str = ""
    paper_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"benchmark {self.name}: family {self.family!r} is not one of {FAMILIES}")
        for key, parts in self.subsets.items():
            if self.size is not None and sum(parts.values()) != self.size:
                raise ValueError(f"benchmark {self.name}: subsets {key!r} add up to {sum(parts.values())}, "
                                 f"not its size {self.size}")
        if not self.metric:
            object.__setattr__(self, "metric", HEADLINE[self.family])


BENCHMARKS: Registry[Benchmark] = Registry("benchmark", discover=__name__)


def get_benchmark(name: str) -> Benchmark:
    return BENCHMARKS.get(name)


def benchmark_names(family: str | None = None) -> list[str]:
    return [n for n in BENCHMARKS.names() if family is None or BENCHMARKS.get(n).family == family]


@dataclass(frozen=True)
class Coverage:
    """How much of a benchmark's declared set a result covers."""

    expected: int | None  # the declared size (None: the benchmark has no fixed set)
    evaluated: int
    missing: dict[str, list[str]] = field(default_factory=dict)  # subset key -> parts with no item
    notes: tuple[str, ...] = ()  # why the population is not the published one
    complete: bool = False

    @property
    def line(self) -> str:
        """"complete: 2094 of 2094" or "partial: 1089 of 1871 (missing subjects: nutrition, ...)"."""
        if self.expected is None:
            head = f"unchecked: {self.evaluated} items (no published set size to check against)"
        else:
            head = f"{'complete' if self.complete else 'partial'}: {self.evaluated} of {self.expected}"
        why = [f"missing {_plural(k)}: {', '.join(v)}" for k, v in self.missing.items()] + list(self.notes)
        return f"{head} ({'; '.join(why)})" if why else head

    def to_dict(self) -> dict[str, Any]:
        return {"expected": self.expected, "evaluated": self.evaluated, "missing": self.missing,
                "notes": list(self.notes), "complete": self.complete, "line": self.line}


def _plural(key: str) -> str:
    return key if key.endswith("s") else f"{key}s"


def coverage(name: str, samples: Iterable[Record | dict]) -> Coverage:
    """What `samples` (records or scored samples of benchmark `name`) cover of its declared set.

    Complete means: as many items as declared, every declared subset present, and no
    record flagged meta["not_comparable"] by its source (e.g. a PubMedQA copy whose test
    ids cannot be confirmed).
    """
    bench = get_benchmark(name)
    metas = [(s.meta if isinstance(s, Record) else s.get("meta")) or {} for s in samples]
    missing = {}
    for key, parts in bench.subsets.items():
        seen = Counter(str(m.get(key)) for m in metas)
        absent = [p for p in parts if not seen[p]]
        if absent:
            missing[key] = absent
    notes = sorted({str(m["not_comparable"]) for m in metas if m.get("not_comparable")})
    if bench.size is not None and len(metas) > bench.size:
        notes.append(f"{len(metas) - bench.size} more items than the published set")
    complete = bench.size is not None and len(metas) == bench.size and not missing and not notes
    return Coverage(expected=bench.size, evaluated=len(metas), missing=missing, notes=tuple(notes), complete=complete)


def catalogue() -> list[str]:
    """`medmo eval --list`: one line per benchmark with its family, size, metric, licence and source."""
    rows = [("benchmark", "family", "items", "headline", "licence", "source")]
    for name in BENCHMARKS.names():
        b = BENCHMARKS.get(name)
        size = "–" if b.size is None else f"{b.size}" + ("" if _verified(b) else "?")
        rows.append((name, b.family, size, b.metric, b.licence or "–", b.url or "–"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    return lines + ["", "items: the published evaluation set; '?' = taken from the dataset's documentation, "
                        "not checked against data here (see the benchmark's docstring)."]


def _verified(b: Benchmark) -> bool:
    return not b.size_checked.startswith("unverified")
