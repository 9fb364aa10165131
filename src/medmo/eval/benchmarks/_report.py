"""Shared plumbing for the report-generation benchmarks (not a benchmark: the leading
underscore keeps it out of the registry).

`register_report` turns a data source into a registered `Benchmark`:
- load: the source's converter (records carry MedEvalKit's report prompt, see
  medmo.data.sources._report), with MedEvalKit's filter (a study with neither findings
  nor impression is dropped by the converter).
- score (per sample): the response minus <think> blocks and, when present, the inside of
  <answer>...</answer>; BLEU-1..4 and ROUGE-L against the reference (medmo.eval.metrics);
  "score" is ROUGE-L; "empty" marks an empty response (scored 0, never a crash);
  chest X-ray benchmarks add the rule CheXpert labels of the response. An optional judge
  gets {"question", "reference", "response"}.
- aggregate (corpus): n, mean BLEU-1..4, mean ROUGE-L, CIDEr-D (document frequencies
  from this benchmark's references), empty responses, the rule CheXpert F1 (chest X-ray
  only; a rule approximation, not CheXbert F1), CheXbert F1 / RaTEScore / SembScore when their model
  files are available (medmo.eval.model_metrics; otherwise "notes" says what is
  missing), and the judge's accuracy when a judge ran.
Modes: "strict" compares with the record's reference "Findings: <f> Impression: <i>";
"medevalkit" rebuilds MedEvalKit's golden text f"Findings: {f} Impression: {i}." (its
trailing period included) for comparison with published tables. Tokenization and
metric definitions are medmo.eval.metrics' (its docstring lists where they depart from
MedEvalKit's code).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from medmo.data.schema import Record
from medmo.data.sources import get_source
from medmo.eval import metrics
from medmo.eval.benchmarks import BENCHMARKS, Benchmark
from medmo.eval.benchmarks._data import convert_records, resolve_data
from medmo.eval.chexpert import label_report, rule_chexpert_f1
from medmo.eval.model_metrics import model_metrics
from medmo.eval.options import ScoringOptions, check_mode
from medmo.eval.scoring import strip_think, tag_content
from medmo.eval.tasks import report_reference
from medmo.model.prompts import PROMPT_VERSION


def clean_response(response: str | None) -> str:
    """The report text of a response: no <think> blocks; the inside of <answer> when given."""
    text = strip_think(response or "")
    inner = tag_content(text, "answer")
    return " ".join((inner if inner is not None else text).split())


def reference_text(answer: dict, mode: str) -> str:
    """The reference: the record's (medmo.eval.tasks.report_reference, as rewards read it), or in
    medevalkit mode MedEvalKit's golden text."""
    if check_mode(mode) == "medevalkit" and ("findings" in answer or "impression" in answer):
        return f"Findings: {answer.get('findings', '')} Impression: {answer.get('impression', '')}."
    return report_reference(answer)


def score_report(sample: dict, response: str | None, mode: str = "strict", chest_xray: bool = True) -> dict[str, Any]:
    hyp = clean_response(response)
    ref = reference_text(sample.get("answer") or {}, mode)
    out: dict[str, Any] = {"parsed": hyp, "reference": ref, "empty": not hyp, **metrics.pair_scores(ref, hyp)}
    out["score"] = out["rouge_l"]
    if chest_xray:
        out["labels"] = label_report(hyp)
    out["judge"] = {"question": (sample.get("meta") or {}).get("question", "Write the report for the given images."),
                    "reference": ref, "response": hyp}
    return out


def aggregate_report(samples: list[dict], chest_xray: bool = True) -> dict[str, Any]:
    refs = [s.get("reference", (s.get("answer") or {}).get("text", "")) for s in samples]
    hyps = [s.get("parsed") if s.get("parsed") is not None else clean_response(s.get("response")) for s in samples]
    out: dict[str, Any] = metrics.report_metrics(refs, hyps)
    out["empty_responses"] = sum(not h for h in hyps)
    if chest_xray:
        out.update(rule_chexpert_f1(refs, hyps))
    # SembScore and CheXbert F1 use CheXbert, a chest X-ray model: only for chest X-ray benchmarks.
    chexbert = ("sembscore", "chexbert_f1") if chest_xray else ()
    out.update(model_metrics(refs, hyps, names=("ratescore", *chexbert)))
    judged = [s["correct"] for s in samples if isinstance(s.get("correct"), bool)]
    if judged:
        out["judge_accuracy"] = sum(judged) / len(judged)
    return out


def register_report(name: str, *, source: str, expected: str, split: str | None = None, chest_xray: bool = True,
                    default_data: str | None = None, keep: Callable[[Record], bool] | None = None,
                    description: str = "", version: str = "1", **card: Any) -> Benchmark:
    """Register one report benchmark (see the module docstring); `keep` selects records
    (e.g. one release format of a source that reads several)."""

    def load(data: Path | None = None, **options: Any) -> list[Record]:
        def convert(path: Path, drops):
            return (r for r in get_source(source).convert(path, drops, split, **options) if keep is None or keep(r))

        return convert_records(name, resolve_data(name, data, default_data, expected), convert, expected,
                               f"reports (split {split!r})")

    def score(sample: dict, response: str, options: ScoringOptions | str = "strict") -> dict[str, Any]:
        return score_report(sample, response, ScoringOptions.of(options).mode, chest_xray)

    def aggregate(samples: list[dict]) -> dict[str, Any]:
        return aggregate_report(samples, chest_xray)

    bench = Benchmark(name=name, family="report", load=load, score=score, aggregate=aggregate,
                      version=f"{version}.p{PROMPT_VERSION}", default_data=default_data, description=description,
                      **card)
    BENCHMARKS.add(name, bench)
    return bench
