"""From samples.jsonl to results: per-unit summaries, judge coverage, results.json and results.md.

Everything here reads finished samples (medmo.eval.samples.Sample), never the model, so a
resumed, merged (medmo.eval.offline.merge) or re-scored run reports every sample the
same way. `summarize` gives one unit's row: its metrics (the unit's `aggregate`),
failures and issues by reason, answers cut at the token budget, judge coverage, its
protocol and (benchmarks) how much of the published set it covers. `finish` writes
results.json, results.md and the plots (medmo.eval.report). `check_resumable` refuses to
mix another model's or scoring setup's samples into a run folder.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from medmo.eval.samples import CUT, SampleLog
from medmo.eval.units import Unit
from medmo.model.prompts import PROMPT_VERSION

logger = logging.getLogger(__name__)
RESULTS_JSON, RESULTS_MD, SAMPLES = "results.json", "results.md", "samples.jsonl"
JUDGE_COMPLETE = 0.95  # a judge that decided fewer of a benchmark's open items leaves the run incomplete


def judge_coverage(scored: list[dict], judge_model: str | None) -> dict[str, Any] | None:
    """Open items a judge must decide, how many it decided, the rest by reason ("no_judge" without one).

    Which items need a judge is the scorer's call: in medevalkit mode every open answer
    (and report), in strict mode the open answers that are not an exact match."""
    status = Counter(s.get("judge_status") or ("judged" if isinstance(s.get("judge_verdict"), bool) else None)
                     for s in scored)
    status.pop(None, None)
    n_open = sum(status.values())
    if not n_open:
        return None
    judged = status.pop("judged", 0)
    out: dict[str, Any] = {"open": n_open, "judged": judged, "fell_back": dict(sorted(status.items())),
                           "coverage": judged / n_open}
    if judge_model:
        out["complete"] = judged / n_open >= JUDGE_COMPLETE
    return out


def summarize(unit_name: str, kind: str, family: str, version: str, samples: list[dict],
              aggregate: Callable[[list[dict]], dict], skipped: dict[str, int] | None = None,
              protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metrics over the scored samples, failure counts by reason, answers cut at the token
    budget, judge coverage, the unit's protocol and (benchmarks) how much of the published
    set the scored samples cover (medmo.eval.benchmarks.coverage)."""
    scored = [s for s in samples if not s.get("failure")]
    reasons = Counter(s["failure"] for s in samples if s.get("failure"))
    reasons.update(skipped or {})
    reasons.update(issue for s in scored for issue in s.get("issues", []))
    metrics = aggregate(scored) if scored else {"n": 0}
    out = {"kind": kind, "family": family, "version": version, **metrics,
           "n_failed": sum(1 for s in samples if s.get("failure")), "failures": dict(sorted(reasons.items())),
           "cut": reasons.get(CUT, 0)}
    if kind == "benchmark":
        from medmo.eval.benchmarks import coverage

        out["coverage"] = coverage(unit_name, scored).to_dict()
    judge = judge_coverage(scored, (protocol or {}).get("judge_model"))
    if judge:
        out["judge"] = judge
    if protocol is not None:
        out["protocol"] = protocol
    return out


def unit_protocol(unit: Unit, header: dict) -> dict[str, Any]:
    """What a unit's numbers depend on, beside its metrics: compared with the paper's in results.md."""
    return {"protocol": header.get("protocol", "default"), "mode": header.get("mode"),
            "judge_model": header.get("judge_model"), "prompt_version": unit.version or f"p{PROMPT_VERSION}",
            "box_format": header.get("box_format"), "max_new_tokens": unit.max_new_tokens,
            "set": unit.paper_set or "paper"}


def incomplete(units: dict[str, dict]) -> dict[str, str]:
    """Benchmarks whose judge decided too few open items: why each makes the run incomplete."""
    out = {}
    for name, res in units.items():
        j = res.get("judge") or {}
        if j.get("complete") is False:
            out[name] = (f"judge decided {j['judged']} of {j['open']} open items "
                         f"({100 * j['coverage']:.1f}% < {100 * JUDGE_COMPLETE:.0f}%)")
    return out


def finish(out: Path, header: dict, units: dict[str, dict], plots: bool) -> dict:
    """Write results.json, results.md and plots; return the results dict."""
    from medmo.eval.report import mark_comparable, write_report

    results = {**header, "benchmarks": units}
    if incomplete(units):
        results["incomplete"] = incomplete(units)
    mark_comparable(results)
    (out / RESULTS_JSON).write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    write_report(results, out, plots=plots)
    return results


def check_resumable(out: Path, header: dict, restart: bool = False) -> None:
    """Never mix samples of another model or scoring setup into a run folder: raise, or with
    `restart` move the old samples aside (samples.jsonl.stale) and start over."""
    path = out / RESULTS_JSON
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return
    diff = [k for k in ("model", "model_fingerprint", "protocol", "mode", "box_format", "grounding_protocol",
                        "judge_model", "max_new_tokens")
            if k in old and k in header and old[k] != header[k]]
    if diff and restart:
        logger.warning("%s holds results of a different %s: old samples moved to %s.stale, starting over",
                       out, ", ".join(diff), SAMPLES)
        if (out / SAMPLES).exists():
            (out / SAMPLES).replace(out / f"{SAMPLES}.stale")
        path.unlink()
    elif diff:
        raise ValueError(f"{out} holds a run with different {', '.join(diff)} "
                         f"({', '.join(f'{k}={old[k]!r}' for k in diff)}): resuming would mix them; "
                         f"use another --out or delete the folder")


def summaries(units: list[Unit], log: SampleLog, header: dict) -> dict[str, dict]:
    """Each unit's summary over every sample the log holds for it."""
    samples = log.by_unit()
    return {u.name: summarize(u.name, u.kind, u.family, u.version, samples.get(u.name, []), u.aggregate,
                              {"duplicate_id": u.duplicates} if u.duplicates else None, unit_protocol(u, header))
            for u in units}
