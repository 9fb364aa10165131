"""The scored sample (`Sample`), how one is built, samples.jsonl (the evaluation's durable log),
and lenient reading of record files.

A `Sample` is one line of samples.jsonl: the record as it was asked plus what happened to
it; `Sample` below lists every key once. It is built in two steps, generation then
scoring: `asked` (the response and how generation ended) or `failed` (it could not be
asked), then `score_sample` (the scorer's fields, or a failure when the row's answer is
malformed) and `judge_samples` (the judge's verdict on open answers).

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
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypedDict

from medmo.data.schema import validate_record
from medmo.data.shards import heal_jsonl

if TYPE_CHECKING:
    from medmo.eval.judge import Judge
    from medmo.eval.options import ScoringOptions

logger = logging.getLogger(__name__)
CUT = "cut_at_max_new_tokens"  # the issue of an answer cut at its token budget


class Sample(TypedDict, total=False):
    """One line of samples.jsonl. Always there: "id" and "benchmark"; a record file's malformed row
    has little else ("failure" says so), every other sample the whole record."""

    # the record as asked (medmo.data.schema, DESIGN.md "The unified record"), unchanged
    id: str
    source: str
    split: str
    task: str  # vqa | mcq | report | caption | grounding | retrieval
    modality: str
    images: list[str]
    messages: list[dict]
    answer: dict  # the ground truth
    meta: dict
    benchmark: str  # the unit (benchmark, or the record file's stem); with "id", the sample's key in the log
    # generation
    response: str  # the model's raw text; absent when the sample could not be asked
    finish_reason: str  # "stop" | "length", when the backend says
    tokens: int  # tokens generated, when the backend knows
    failure: str  # not asked or not scorable: missing_image | corrupt_image | malformed_row | backend_error |
    #               scoring_error; left out of the metrics, counted by reason, retried on the next run
    error: str  # the failure's message
    issues: list[str]  # scored, but: empty_response | cut_at_max_new_tokens | judge_* (why the judge fell back)
    # scoring (medmo.eval.scoring, medmo.eval.grounding, medmo.eval.benchmarks._report; each scorer's docstring
    # adds its metric keys: report metrics of medmo.eval.metrics.pair_scores, detection counts "tp@0.3" ...)
    parsed: Any  # what scoring read: a letter, "yes"/"no", answer text, boxes [[x1, y1, x2, y2], ...] in pixels
    correct: bool  # accuracy tasks; the judge's verdict when it decided
    score: float  # grounding: set IoU in [0, 1]; reports: ROUGE-L
    closed: bool  # VQA: counted as a closed question
    precision: float  # open answers: token precision / recall / F1 (medevalkit mode: in MedEvalKit's order)
    recall: float
    f1: float
    medevalkit_crash: bool  # an empty answer where MedEvalKit would have crashed
    parse_failure: bool  # grounding: no readable box
    n_pred: int  # grounding: predicted and true boxes (with "tp@t", medmo.eval.grounding.detection_counts)
    n_true: int
    reference: str  # reports: the reference text scored against
    empty: bool  # reports: an empty response
    labels: dict  # chest X-ray reports: the response's rule CheXpert labels
    # the judge (open answers; medmo.eval.judge)
    judge: dict  # what to ask the judge ({"question", "reference", "response"}); removed before writing
    judge_status: str  # "judged" | "no_judge" | why the judge fell back (judge_timeout, judge_empty, ...)
    judge_verdict: bool | None  # the judge's answer (None: undecided)
    rule_correct: bool  # the rule score the verdict replaced


def failed(rec: dict, reason: str, error: str) -> Sample:
    """A sample that could not be asked or scored (module docstring)."""
    return {**rec, "failure": reason, "error": error}  # type: ignore[typeddict-item]


def asked(rec: dict, response: str, finish_reason: str | None = None, tokens: int | None = None,
          cut: bool = False) -> Sample:
    """A sample with its response, before scoring."""
    sample: Sample = {**rec, "response": response}  # type: ignore[typeddict-item]
    if finish_reason is not None:
        sample["finish_reason"] = finish_reason
    if tokens is not None:
        sample["tokens"] = tokens
    if cut:
        sample["issues"] = [CUT]
    return sample


def score_sample(sample: Sample, score: Callable[[dict, str, ScoringOptions], dict],
                 options: ScoringOptions) -> Sample:
    """The sample with the scorer's fields, or a failure when its answer is malformed or the scorer broke."""
    response = sample.get("response") or ""
    try:
        fields = score(sample, response, options)
    except ValueError as e:  # a malformed answer in the row: name it, keep going
        return failed(sample, "malformed_row", str(e))
    except Exception as e:  # noqa: BLE001 - a scorer bug must not stop a long run; it is counted and logged
        logger.exception("scoring %s failed", sample.get("id"))
        return failed(sample, "scoring_error", f"{type(e).__name__}: {e}")
    out: Sample = {**sample, **fields}  # type: ignore[typeddict-item]
    issues = (["empty_response"] if not response.strip() else []) + sample.get("issues", [])
    if issues:
        out["issues"] = issues
    return out


def judge_samples(samples: list[Sample], judge: Judge | None) -> None:
    """Ask the judge about open answers; its verdict replaces the rule score when it has one.

    Every open item gets "judge_status": "judged", the reason the judge fell back
    ("judge_timeout", "judge_empty", ...; also in "issues") or "no_judge"."""
    todo = [s for s in samples if isinstance(s.get("judge"), dict)]
    if judge is not None and todo:
        verdicts = judge.judge([s["judge"] for s in todo])
        for s, v in zip(todo, verdicts):
            s["rule_correct"], s["judge_verdict"] = s.get("correct"), v.value
            if v.value is None:
                s["judge_status"] = v.reason or "judge_error"
                s.setdefault("issues", []).append(s["judge_status"])
            else:
                s["correct"], s["judge_status"] = v.value, "judged"
    for s in todo:
        s.setdefault("judge_status", "no_judge")
        del s["judge"]


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
