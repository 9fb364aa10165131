"""Shared plumbing for the grounding benchmarks (not a benchmark: the leading underscore
keeps it out of the registry).

`register_grounding` turns a record loader plus a few choices into a registered
`Benchmark`:
- `load` gives records whose prompts and targets are already rendered by the data
  source (ground truth in pixels with answer.image_size, DESIGN.md);
- `score` is medmo.eval.grounding.score_grounding with the benchmark's
  coordinate convention: box_format "grid" = the response speaks Qwen3-VL's 0-1000 grid,
  the convention of every prompt medmo renders (MedMO, Qwen3-VL, Lingshu); the options'
  box_format (the user's --box-format) overrides it, and so does a predictions row's own
  "box_format" when the options give none;
- `aggregate` is aggregate_grounding plus one breakdown per meta key in `groups`
  ({"by_finding": {"Mass": {"n", "mean_iou", "iou@0.5", "f1@0.5", ...}}, ...}; a dotted key such as
  "strata.size" reads a nested meta field and is reported as "by_size").

Scoring modes: "strict" (default) scores every predicted box (set IoU, boxes clamped to
the image). "medevalkit", the mode that reproduces published tables, applies the
benchmark's published protocol where it has one: MedSG-Bench's "first box as written"
(grounding protocol "medsg"); MedEvalKit itself has no grounding scorer, so the other
grounding benchmarks score the same in both modes.

The benchmark version carries the prompt version ("1.p1"), so a prompt change shows up
in results.json.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from medmo.data.schema import Record
from medmo.data.sources import Drops
from medmo.eval.benchmarks import BENCHMARKS, Benchmark
from medmo.eval.benchmarks._data import convert_records, resolve_data
from medmo.eval.grounding import aggregate_grounding, score_grounding
from medmo.eval.options import ScoringOptions
from medmo.model.prompts import PROMPT_VERSION

Loader = Callable[[Path | None, Drops], list[Record]]
# What each breakdown group reports: set IoU and the detection view (medmo.eval.grounding).
GROUP_METRICS = ("n", "mean_iou", "iou@0.5", "precision@0.5", "recall@0.5", "f1@0.5", "count_mae")


def _meta_value(meta: dict, key: str) -> Any:
    value: Any = meta
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def aggregate_groups(samples: list[dict], groups: tuple[str, ...]) -> dict[str, Any]:
    """aggregate_grounding overall and per value of each meta key in `groups`."""
    out = aggregate_grounding(samples)
    for key in groups:
        buckets: dict[str, list[dict]] = defaultdict(list)
        for s in samples:
            buckets[str(_meta_value(s.get("meta") or {}, key))].append(s)
        out[f"by_{key.rsplit('.', 1)[-1]}"] = {
            k: {m: v for m, v in aggregate_grounding(group).items() if m in GROUP_METRICS}
            for k, group in sorted(buckets.items())
        }
    return out


def register_grounding(name: str, *, load_records: Loader, expected: str, default_data: str | None = None,
                       groups: tuple[str, ...] = (), box_format: str = "grid", published_protocol: str = "set",
                       extra_score: Callable[[dict, dict], dict] | None = None,
                       extra_aggregate: Callable[[list[dict]], dict] | None = None,
                       make_default: Callable[[], Path] | None = None,
                       description: str = "", version: str = "1", **card: Any) -> Benchmark:
    """Register one grounding benchmark (see the module docstring).

    `published_protocol` is the grounding protocol "medevalkit" mode uses ("medsg" for
    MedSG-Bench) when the options name none. `extra_score(sample, scored)` and `extra_aggregate(samples)` add
    benchmark-specific fields (e.g. the Cell set's per-cell recall by stratum).
    `make_default()` builds the data when no --data is given (generated benchmarks).
    """
    def load(data: Path | None = None) -> list[Record]:
        if data is None and make_default is not None:
            path = make_default()
        else:
            path = resolve_data(name, data, default_data, expected)
        return convert_records(name, path, load_records, expected, "grounding items")

    def score(sample: dict, response: str, options: ScoringOptions | str = "strict") -> dict[str, Any]:
        opts = ScoringOptions.of(options)
        fmt = opts.box_format or sample.get("box_format") or box_format
        scored = score_grounding(sample["answer"], response, fmt, protocol=opts.grounding(published_protocol))
        if extra_score is not None:
            scored.update(extra_score(sample, scored))
        return scored

    def aggregate(samples: list[dict]) -> dict[str, Any]:
        out = aggregate_groups(samples, groups)
        if extra_aggregate is not None:
            out.update(extra_aggregate(samples))
        return out

    bench = Benchmark(name=name, family="grounding", load=load, score=score, aggregate=aggregate,
                      version=f"{version}.p{PROMPT_VERSION}", default_data=default_data, box_format=box_format,
                      description=description, **card)
    BENCHMARKS.add(name, bench)
    return bench


def register_medsg(task: str, summary: str, **card: Any) -> Benchmark:
    """One MedSG-Bench task as a benchmark, `medsg_<task>`.

    Questions are rendered for grid models (box hints rewritten to MedMO's
    `<box>[[...]]</box>` on the 0-1000 grid) and responses read on the grid; ground truth
    is pixels of the item's image. MedSG-Bench's reference outputs (Qwen2.5-VL) are pixels
    of 336x336: score such a file with `medmo score --box-format pixels`. Modes: strict =
    set IoU of all predicted boxes, clamped; medevalkit = MedSG-Bench's published rule
    (first predicted box as written, IoU >= t counts), to compare with published tables.
    """
    from medmo.data.sources import get_source

    return register_grounding(
        f"medsg_{task}", published_protocol="medsg",
        load_records=lambda path, drops: list(get_source("medsg_bench").convert(path, drops, split="test",
                                                                                tasks=(task,))),
        expected=f"MedSG-Bench test JSON(s) with task '{task}' (items: task, images, question, answer)",
        description=f"MedSG-Bench {task}: {summary}; mean IoU, IoU@0.3/0.5/0.7",
        url="https://huggingface.co/MedSG-Bench", licence="CC BY 4.0", **card,
    )
