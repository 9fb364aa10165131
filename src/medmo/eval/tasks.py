"""Score and aggregate records that are not a registered benchmark, by their task.

`evaluate_records` and `medmo score` work on any file of unified records: each record is
scored by its `task` with the module that owns that task's rules, never re-implemented
here: grounding -> medmo.eval.grounding, vqa/mcq -> medmo.eval.scoring, report/caption ->
medmo.eval.metrics. A set of records with several tasks is aggregated per task; the
task metrics are merged into one flat dict (their keys do not collide) with "by_task"
holding each task's own numbers. Retrieval records (medmo.data.retrieval: image-to-caption
multiple choice) are scored as multiple choice.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from medmo.data.schema import IMAGE_TOKEN
from medmo.eval.options import ScoringOptions

FAMILY_OF_TASK = {"grounding": "grounding", "report": "report", "caption": "report", "vqa": "vqa", "mcq": "vqa",
                  "retrieval": "vqa"}
CHOICE_TASKS = ("vqa", "mcq", "retrieval")  # scored by medmo.eval.scoring; retrieval as mcq


def family_of(records: list[dict]) -> str:
    """The paper's table family for a set of records (text-only QA is "textqa")."""
    tasks = {r["task"] for r in records}
    if len(tasks) != 1:
        return "mixed"
    fam = FAMILY_OF_TASK.get(tasks.pop(), "mixed")
    if fam == "vqa" and not any(r.get("images") for r in records):
        return "textqa"
    return fam


def question_text(sample: dict) -> str:
    """The question shown to a judge: meta.question, else the user prompt without placeholders."""
    q = (sample.get("meta") or {}).get("question")
    if q:
        return str(q)
    user = next((m["content"] for m in sample.get("messages", []) if m.get("role") == "user"), "")
    return user.replace(IMAGE_TOKEN, "").strip()


def report_reference(answer: dict) -> str:
    """A report's reference text: answer.text, else findings + impression."""
    if answer.get("text"):
        return str(answer["text"])
    parts = [f"{k.capitalize()}: {answer[k]}" for k in ("findings", "impression") if answer.get(k)]
    if not parts:
        raise ValueError("report answer has no text, findings or impression to compare with")
    return " ".join(parts)


def score_by_task(sample: dict, response: str, options: ScoringOptions = ScoringOptions()) -> dict[str, Any]:
    """Score one sample (a record dict) by its task; ValueError for a malformed answer.

    Record files have no published protocol: grounding is scored with `options`' protocol,
    "set" unless one is given, and boxes are read on the grid unless a box format is given."""
    task, answer = sample["task"], sample.get("answer") or {}
    if task == "grounding":
        from medmo.eval.grounding import score_grounding

        return score_grounding(answer, response, options.box_format or "grid", protocol=options.grounding())
    if task in CHOICE_TASKS:
        from medmo.eval.scoring import score_record

        return score_record("mcq" if task == "retrieval" else task, answer, response, options.mode,
                            question=question_text(sample))
    if task in ("report", "caption"):
        from medmo.eval.metrics import pair_scores

        scores = pair_scores(report_reference(answer), response or "")
        return {"parsed": response, "score": scores["rouge_l"], **scores}
    raise ValueError(f"task {task!r} has no scorer (scored tasks: {', '.join(FAMILY_OF_TASK)})")


def _aggregate_one(task: str, samples: list[dict]) -> dict[str, Any]:
    if task == "grounding":
        from medmo.eval.grounding import aggregate_grounding

        return aggregate_grounding(samples)
    if task in CHOICE_TASKS:
        from medmo.eval.scoring import aggregate_qa

        return aggregate_qa(samples)
    from medmo.eval.metrics import report_metrics

    return report_metrics([report_reference(s["answer"]) for s in samples], [s.get("response") or "" for s in samples])


def aggregate_by_task(samples: list[dict]) -> dict[str, Any]:
    """Metrics over scored samples, per task, merged flat ("n" and "parse_failures" summed)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for s in samples:
        groups["vqa" if s["task"] in CHOICE_TASKS else s["task"]].append(s)
    out: dict[str, Any] = {"n": len(samples), "parse_failures": 0}
    per_task = {task: _aggregate_one(task, group) for task, group in sorted(groups.items())}
    for metrics in per_task.values():
        out["parse_failures"] += int(metrics.get("parse_failures", 0))
        for k, v in metrics.items():
            if k not in ("n", "parse_failures"):
                out.setdefault(k, v)
    if len(per_task) > 1:
        out["by_task"] = per_task
    return out
