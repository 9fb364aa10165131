"""Evaluation without a model: merge shard folders, score saved predictions.

    medmo eval merge runs/eval/all/shard-*-of-4 --out runs/eval/all/merged
    medmo score --predictions preds.jsonl --out runs/score/preds --box-format pixels

`merge` re-aggregates from the shards' samples.jsonl (never averages averages), so the
merged numbers equal a single run over all items. `score_predictions` reads unified
records that carry the model's raw answer in "response" (e.g. outputs saved by another
harness) and scores them by task, or with a registered benchmark's rules (`--benchmark`),
with one ScoringOptions (medmo.eval.options) for every row; the MedSG-Bench protocol
(`--grounding-protocol medsg`, or `--benchmark medsg_* --mode medevalkit`) reproduces that
benchmark's published aggregates. Malformed lines and missing responses are counted, not fatal. With
a judge (`--judge-model`, `--judge-base-url`) open answers are judged and the judge's
coverage is reported as in `medmo eval`. The generation budget of saved predictions is
unknown: cut answers are not counted here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from medmo.config import make_run_dir
from medmo.eval.judge import Judge, JudgeConfig
from medmo.eval.options import GroundingProtocol, Mode, ScoringOptions
from medmo.eval.results import RESULTS_JSON, SAMPLES, finish, summarize, unit_protocol
from medmo.eval.samples import SampleLog, judge_samples, read_record_rows, score_sample
from medmo.eval.tasks import aggregate_by_task
from medmo.eval.units import Unit, records_unit, unique_ids


@dataclass
class ScoreConfig:
    """`medmo score`: every field is a command-line option (`score` runs it)."""

    predictions: str = field(metadata={"help": ".jsonl: one unified record per line plus its \"response\""})
    out: str = field(metadata={"help": "run folder for samples.jsonl, results.json, results.md"})
    box_format: str = field(default="grid", metadata={
        "help": "coordinates in responses: grid (0-1000), pixels (of the original image) or resized:FACTOR:MIN:MAX "
                "(of a Qwen2.5-VL-style processor's resized input, e.g. resized:28:3136:12845056)"})
    grounding_protocol: GroundingProtocol | None = field(default=None, metadata={
        "help": "set IoU over all boxes or MedSG-Bench's first-box rule (its published tables); default: set, or "
                "with --mode medevalkit the --benchmark's published rule"})
    mode: Mode = field(default="strict", metadata={"help": "answer scoring rules"})
    benchmark: str | None = field(default=None, metadata={
        "help": "score with this registered benchmark's rules instead of by task"})
    judge: JudgeConfig = field(default_factory=JudgeConfig, metadata={"help": "LLM judge for open answers"})
    plots: bool = field(default=True, metadata={"help": "write the PNG charts"})

    def __post_init__(self):
        from medmo.model.families import check_box_format

        if isinstance(self.judge, dict):
            self.judge = JudgeConfig(**self.judge)
        check_box_format(self.box_format)


def score(cfg: ScoreConfig) -> Path:
    """Run `medmo score` (score_predictions with the config's options); returns the run folder."""
    return score_predictions(cfg.predictions, cfg.out, box_format=cfg.box_format, mode=cfg.mode,
                             grounding_protocol=cfg.grounding_protocol, benchmark=cfg.benchmark, judge=cfg.judge,
                             plots=cfg.plots)


def merge(dirs: list[str | Path], out: str | Path, plots: bool = True) -> Path:
    """Combine shard folders (their samples.jsonl) into one run folder with fresh results."""
    from medmo.eval.benchmarks import get_benchmark

    if not dirs:
        raise ValueError("merge needs at least one run folder")
    headers, units, latest = [], {}, {}
    for d in map(Path, dirs):
        res_path = d / RESULTS_JSON
        if not res_path.exists():
            raise FileNotFoundError(f"{d} has no {RESULTS_JSON}: not a finished `medmo eval` run folder")
        res = json.loads(res_path.read_text())
        headers.append({k: v for k, v in res.items() if k not in ("benchmarks", "incomplete")})  # recomputed
        units.update(res["benchmarks"])
        latest.update(SampleLog(d / SAMPLES).latest())
    for key in ("model", "protocol", "mode", "box_format", "grounding_protocol", "judge_model", "max_new_tokens"):
        values = {str(h.get(key)) for h in headers}
        if len(values) > 1:
            raise ValueError(f"cannot merge runs with different {key}: {sorted(values)}")
    out = make_run_dir(out)
    (out / SAMPLES).unlink(missing_ok=True)  # everything is in memory; the merged log is written fresh
    log = SampleLog(out / SAMPLES)
    log.extend(latest.values())
    samples = log.by_unit()
    summaries = {}
    for name, meta in units.items():
        aggregate = get_benchmark(name).aggregate if meta.get("kind") == "benchmark" else aggregate_by_task
        summaries[name] = summarize(name, meta.get("kind", "records"), meta.get("family", "mixed"),
                                    meta.get("version", ""), samples.get(name, []), aggregate,
                                    protocol=meta.get("protocol"))
    header = {**headers[0], "shard": f"merged from {len(dirs)} folder(s)"}
    finish(out, header, summaries, plots)
    return out


def score_predictions(predictions: str | Path, out: str | Path, *, box_format: str = "grid", mode: str = "strict",
                      grounding_protocol: str | None = None, benchmark: str | None = None,
                      judge: JudgeConfig | None = None, plots: bool = True) -> Path:
    """Score a file of unified records + "response" (no model); returns the run folder.

    `grounding_protocol` None is the mode's (medmo.eval.options): a benchmark's published
    protocol in medevalkit mode, "set" otherwise."""
    options = ScoringOptions(mode, box_format, grounding_protocol)
    out = make_run_dir(out)
    rows, duplicates = unique_ids(str(predictions), read_record_rows(predictions, need_response=True))
    unit = records_unit(Path(predictions).stem, rows, options=options)
    if benchmark:
        from medmo.eval.benchmarks import get_benchmark

        bench = get_benchmark(benchmark)
        unit = Unit(name=benchmark, kind="benchmark", family=bench.family, records=rows, version=bench.version,
                    score=bench.score, aggregate=bench.aggregate, options=options,
                    paper_set="the predictions' prompt layout is unknown" if bench.paper_options else None)
    judge_cfg = judge or JudgeConfig()
    judge_obj = Judge(judge_cfg, out / "judge_cache.jsonl") if judge_cfg.enabled else None
    samples = [s if s.get("failure") else score_sample(s, unit.score, unit.options) for s in rows]
    judge_samples([s for s in samples if not s.get("failure")], judge_obj)
    for s in samples:
        s["benchmark"] = unit.name
    (out / SAMPLES).unlink(missing_ok=True)
    SampleLog(out / SAMPLES).extend(samples)
    header = {"model": f"predictions: {predictions}", "backend": None, "protocol": "default", "mode": mode,
              "box_format": box_format, "grounding_protocol": grounding_protocol,
              "judge_model": judge_cfg.model if judge_cfg.enabled else None}
    skipped = {"duplicate_id": duplicates} if duplicates else None
    finish(out, header, {unit.name: summarize(unit.name, unit.kind, unit.family, unit.version, samples,
                                              unit.aggregate, skipped, unit_protocol(unit, header))}, plots)
    return out
