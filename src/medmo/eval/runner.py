"""`medmo eval`: run a model on benchmarks or record files, score, and write the run folder.

    medmo eval --model runs/demo/stage3 --suite vqa --out runs/eval/vqa
    medmo eval --model MBZUAI/MedMO-8B --benchmark vqa_rad --data ~/data/vqa_rad --out runs/eval/rad
    medmo eval --model DIR --records my_boxes.jsonl --box-format grid --out runs/eval/mine
    medmo eval --model DIR --suite all --shard 0/4 --out runs/eval/all     # 4 machines, then
    medmo eval merge runs/eval/all/shard-*-of-4 --out runs/eval/all

Flow: config is validated and every benchmark name resolved before a model loads; each
benchmark (or the record file) is loaded, cut to --limit, split by --shard; samples
already in samples.jsonl are skipped (resume recomputes nothing; the judge is asked again
only about answers it could not decide before); the rest go to the backend in chunks, are scored (benchmark rules, or by task for record files), judged when
a judge is set, and appended to samples.jsonl chunk by chunk. results.json, results.md
and the plots are then computed from samples.jsonl, so a resumed or merged run reports
every sample.

Every run records its protocol (results.json "protocol" and each benchmark's
"protocol": scoring mode, judge model, prompt version, box format, generation budget,
whether the item set is the paper's) so results.md compares with published numbers only
where they match (medmo.eval.report). `--protocol paper` selects the paper's protocol in
one flag: MedEvalKit's scoring rules (mode medevalkit), each benchmark's paper set
(`paper_options`), MedEvalKit's 8192-token budget and an LLM judge on open answers, which
it requires. Judge coverage
(open items judged, fallen back by reason) and answers cut at the token budget are
counted per benchmark; a judge that decided under 95% of a benchmark's open items marks
the run incomplete (results.json "incomplete").

Bad items never stop a run. A sample that cannot be asked (missing or corrupt image,
malformed row, backend error) is written with "failure" and left out of the metrics; it
is retried on the next run (fix the image, re-run). A sample that was asked but has an
empty response or a failed judge call is scored (empty = wrong / IoU 0; judge failure =
rule score) and carries the reason in "issues". results.json counts both by reason.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from tqdm import tqdm

from medmo.config import make_run_dir
from medmo.data.schema import Record, resolve_image
from medmo.eval.judge import Judge, JudgeConfig
from medmo.eval.options import ScoringOptions
from medmo.eval.samples import SampleLog, read_record_rows, sample_key
from medmo.eval.units import (Unit, benchmark_unit, default_max_new_tokens, parse_shard, records_unit, select,
                              unique_ids)
from medmo.model.families import box_format_for, check_box_format
from medmo.model.prompts import PROMPT_VERSION

logger = logging.getLogger(__name__)
RESULTS_JSON, RESULTS_MD, SAMPLES = "results.json", "results.md", "samples.jsonl"
RECIPES = Path(__file__).resolve().parents[3] / "recipes" / "eval"
JUDGE_COMPLETE = 0.95  # a judge that decided fewer of a benchmark's open items leaves the run incomplete
CUT = "cut_at_max_new_tokens"


@dataclass
class EvalConfig:
    """One evaluation run; suite recipes in recipes/eval/*.yaml set `suite` and `benchmarks`."""

    model: str = field(default="", metadata={
        "help": "checkpoint folder or hub id (hf/vllm), or served model name (openai)"})
    backend: Literal["hf", "vllm", "openai"] = field(default="hf", metadata={"help": "generation backend"})
    suite: str | None = field(default=None, metadata={
        "help": "suite name shown in results (vqa, textqa, report, grounding, all)"})
    benchmarks: list[str] = field(default_factory=list, metadata={
        "help": "registered benchmark name(s), repeatable or comma-separated", "aliases": ("--benchmark",)})
    records: str | None = field(default=None, metadata={
        "help": "a .jsonl/.parquet of unified records, scored by task (images relative to it)"})
    data: str | None = field(default=None, metadata={
        "help": "the benchmark's data folder, or a root holding one folder per benchmark"})
    limit: int | None = field(default=None, metadata={"help": "first N items of each benchmark (before sharding)"})
    shard: str = field(default="0/1", metadata={
        "help": "i/n: evaluate every n-th item from i (writes OUT/shard-i-of-n)"})
    out: str = field(default="runs/eval", metadata={"help": "run folder; re-running resumes it"})
    batch_size: int = field(default=16, metadata={"help": "hf backend: sequences per batch"})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "generation budget per answer (default per benchmark: 4096 VQA/grounding, 8192 text QA/reports)"})
    protocol: Literal["default", "paper"] = field(default="default", metadata={
        "help": "paper: MedEvalKit scoring, the paper's item sets and a judge (required), as MedMO's tables"})
    mode: Literal["strict", "medevalkit"] | None = field(default=None, metadata={
        "help": "answer scoring rules, see medmo.eval.options (default strict; with --protocol paper: medevalkit)"})
    box_format: str | None = field(default=None, metadata={
        "help": "coordinates in responses: grid (0-1000), pixels (of the original image) or resized (of the "
                "processor's resized input); default: the model family's (Qwen2.5-VL: resized)"})
    grounding_protocol: Literal["set", "medsg"] | None = field(default=None, metadata={
        "help": "set IoU over all boxes or MedSG-Bench's first-box rule (default: the mode's, medmo.eval.options)"})
    dtype: str = field(default="auto", metadata={
        "help": "hf/vllm weights dtype: auto (bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16"})
    device: str | None = field(default=None, metadata={"help": "cpu | cuda (default: cuda when available)"})
    min_pixels: int | None = field(default=None, metadata={"help": "image budget: min pixels per image"})
    max_pixels: int | None = field(default=None, metadata={
        "help": "image budget: max pixels per image (bounds memory)"})
    base_url: str | None = field(default=None, metadata={
        "help": "openai backend: server base URL, e.g. http://host:8000/v1"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "openai backend: environment variable with the key"})
    concurrency: int = field(default=8, metadata={"help": "openai backend: requests in flight"})
    judge: JudgeConfig = field(default_factory=JudgeConfig, metadata={
        "help": "LLM judge for open answers (off by default)"})
    plots: bool = field(default=True, metadata={"help": "write bar and radar charts (PNG) next to results.md"})
    skip_missing: bool = field(default=False, metadata={
        "help": "list benchmarks whose data is not found as skipped instead of stopping"})

    def __post_init__(self):
        from medmo.eval.backends import BACKENDS
        from medmo.eval.options import GROUNDING_PROTOCOLS, MODES
        from medmo.registry import unknown_name_message

        if isinstance(self.judge, dict):
            self.judge = JudgeConfig(**self.judge)
        if not self.model:
            raise ValueError("model is required: a checkpoint folder, a hub id or a served model name")
        if self.backend not in BACKENDS:
            raise ValueError(unknown_name_message("backend", self.backend, BACKENDS.names()))
        if self.protocol not in ("default", "paper"):
            raise ValueError(f"protocol must be default or paper, got {self.protocol!r}")
        if self.protocol == "paper":
            if not self.judge.enabled:
                raise ValueError("--protocol paper needs an LLM judge for open answers, as the paper used "
                                 "(MedEvalKit with gpt-5-mini): give --judge-model M --judge-base-url URL")
            if self.mode not in (None, "medevalkit"):
                raise ValueError(f"--protocol paper scores with MedEvalKit's rules (mode medevalkit), not mode "
                                 f"{self.mode!r}: drop --mode, or drop --protocol paper")
        if self.mode is None:
            self.mode = "medevalkit" if self.protocol == "paper" else "strict"
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        check_box_format(self.box_format)
        if self.grounding_protocol not in (None, *GROUNDING_PROTOCOLS):
            raise ValueError(f"grounding_protocol must be one of {GROUNDING_PROTOCOLS}, got {self.grounding_protocol!r}")
        if not self.benchmarks and not self.records:
            raise ValueError("nothing to evaluate: give --suite, --benchmark or --records")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        parse_shard(self.shard)


def suite_path(suite: str) -> Path:
    """A suite name (recipes/eval/<name>.yaml) or a path to a suite YAML."""
    p = Path(suite)
    if p.suffix in (".yaml", ".yml"):
        if not p.exists():
            raise FileNotFoundError(f"suite file {p} does not exist")
        return p
    p = RECIPES / f"{suite}.yaml"
    if not p.exists():
        from medmo.registry import unknown_name_message

        raise ValueError(unknown_name_message("suite", suite, [q.stem for q in RECIPES.glob("*.yaml")]))
    return p


# ---------------------------------------------------------------------------- running


def build_request(rec: dict, base_dir: Path | None, max_new_tokens: int | None = None):
    """(Request, None) for a record, or (None, (reason, message)) when it cannot be asked."""
    from medmo.eval.backends import Request
    from medmo.imaging import open_image
    from medmo.model.chat import prompt_messages

    images = []
    for p in rec.get("images") or []:
        try:
            images.append(open_image(resolve_image(p, base_dir)))
        except FileNotFoundError as e:
            return None, ("missing_image", str(e))
        except (ValueError, OSError) as e:
            return None, ("corrupt_image", str(e))
    try:
        return Request(prompt_messages(rec["messages"]), images, max_new_tokens=max_new_tokens), None
    except (ValueError, KeyError, TypeError) as e:
        return None, ("malformed_row", f"{type(e).__name__}: {e}")


def _failure(rec: dict, reason: str, error: str) -> dict:
    return {**rec, "failure": reason, "error": error}


def score_sample(unit: Unit, rec: dict, response: str) -> dict:
    sample = {**rec, "response": response}
    try:
        sample.update(unit.score(rec, response, unit.options))
    except ValueError as e:  # a malformed answer in the row: name it, keep going
        return _failure(sample, "malformed_row", str(e))
    except Exception as e:  # noqa: BLE001 - a scorer bug must not stop a long run; it is counted and logged
        logger.exception("scoring %s failed", rec.get("id"))
        return _failure(sample, "scoring_error", f"{type(e).__name__}: {e}")
    if not (response or "").strip():
        sample.setdefault("issues", []).append("empty_response")
    return sample


def judge_samples(samples: list[dict], judge: Judge | None) -> None:
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


def _generate(backend, requests: list) -> list:
    """One Generation per request; a failing batch is retried one by one to isolate the bad item.

    A backend without `generations` (any object with `.generate(requests) -> list[str]`)
    reports text only: nothing is known about cut answers there."""
    from medmo.eval.backends import Generation

    try:
        if hasattr(backend, "generations"):
            return backend.generations(requests)
        return [Generation(text) for text in backend.generate(requests)]
    except Exception as e:  # noqa: BLE001 - e.g. an image the processor rejects; isolate it below
        if len(requests) == 1:
            return [Generation(error=f"{type(e).__name__}: {e}")]
        logger.warning("batch of %d failed (%s); retrying one at a time", len(requests), e)
    return [_generate(backend, [r])[0] for r in requests]


def is_cut(gen, budget: int | None) -> bool:
    """Cut at the token budget: the backend says so, or (when it does not say why it ended) it
    generated the whole budget."""
    if gen.finish_reason is not None:
        return gen.finish_reason == "length"
    return budget is not None and gen.tokens is not None and gen.tokens >= budget


def rejudge(unit: Unit, log: SampleLog, judge: Judge | None) -> int:
    """Ask the judge again about finished samples it could not decide before (a timeout, an
    empty reply): the saved response is re-scored, never regenerated. Returns how many it decided."""
    latest = log.latest()
    old = {sample_key(unit.name, r): r for r in unit.records}
    retry = [(rec, latest[k]) for k, rec in old.items()
             if k in latest and str(latest[k].get("judge_status", "")).startswith("judge_")]
    if judge is None or not retry:
        return 0
    fresh = []
    for rec, before in retry:
        sample = score_sample(unit, rec, before.get("response") or "")
        sample.update({k: before[k] for k in ("finish_reason", "tokens") if k in before})
        if CUT in before.get("issues", []):
            sample.setdefault("issues", []).append(CUT)
        fresh.append(sample)
    judge_samples(fresh, judge)
    decided = [{**s, "benchmark": unit.name} for s in fresh if s.get("judge_status") == "judged"]
    log.extend(decided)
    logger.info("%s: the judge decided %d of %d answer(s) it had fallen back on", unit.name, len(decided), len(retry))
    return len(decided)


def run_unit(unit: Unit, log: SampleLog, backend, judge: Judge | None, chunk: int, progress: tqdm) -> None:
    rejudge(unit, log, judge)
    todo = [r for r in unit.records if sample_key(unit.name, r) not in log.done]
    progress.set_description(unit.name)
    for start in range(0, len(todo), chunk):
        rows, requests, samples = todo[start:start + chunk], [], []
        for rec in rows:
            if rec.get("failure"):
                samples.append({**rec, "benchmark": unit.name})
                continue
            request, failure = build_request(rec, unit.base_dir, unit.max_new_tokens)
            if failure:
                samples.append(_failure(rec, *failure))
            else:
                requests.append((rec, request))
        if requests:
            budget = unit.max_new_tokens or getattr(backend, "max_new_tokens", None)
            for (rec, _), gen in zip(requests, _generate(backend, [q for _, q in requests])):
                if gen.error:
                    samples.append(_failure(rec, "backend_error", gen.error))
                    continue
                sample = score_sample(unit, rec, gen.text)
                sample.update({k: v for k, v in (("finish_reason", gen.finish_reason), ("tokens", gen.tokens))
                               if v is not None})
                if is_cut(gen, budget) and not sample.get("failure"):
                    sample.setdefault("issues", []).append(CUT)
                samples.append(sample)
        judge_samples([s for s in samples if not s.get("failure")], judge)
        for s in samples:
            s["benchmark"] = unit.name
        log.extend(samples)
        progress.update(len(rows))


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


def evaluate_units(units: list[Unit], out: Path, backend, judge: Judge | None, header: dict,
                   batch_size: int, limit: int | None = None, shard: str = "0/1", plots: bool = True,
                   restart_on_change: bool = False) -> dict:
    check_resumable(out, header, restart=restart_on_change)
    log = SampleLog(out / SAMPLES)
    for u in units:
        u.records = select(u.records, limit, shard)
        u.records, u.duplicates = unique_ids(u.name, u.records)
    total = sum(1 for u in units for r in u.records if sample_key(u.name, r) not in log.done)
    logger.info("%d sample(s) to evaluate, %d already done in %s", total, len(log.done), out / SAMPLES)
    with tqdm(total=total, unit="sample", dynamic_ncols=True) as progress:
        for u in units:
            # a chunk's images are all in memory at once: a few batches give length sorting room, no more
            run_unit(u, log, backend, judge, chunk=batch_size * 2, progress=progress)
    samples = log.by_unit()
    summaries = {u.name: summarize(u.name, u.kind, u.family, u.version, samples.get(u.name, []), u.aggregate,
                                   {"duplicate_id": u.duplicates} if u.duplicates else None,
                                   unit_protocol(u, header))
                 for u in units}
    return finish(out, header, summaries, plots)


def _backend(cfg: EvalConfig):
    from medmo.eval.backends import get_backend

    kw: dict[str, Any] = dict(model=cfg.model, max_new_tokens=cfg.max_new_tokens or 4096)  # requests carry their own
    if cfg.backend == "openai":
        kw.update(base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency)
    else:
        kw.update(dtype=cfg.dtype, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels, device=cfg.device)
        if cfg.backend == "hf":
            kw["batch_size"] = cfg.batch_size
    return get_backend(cfg.backend, **kw)


def header_of(cfg: EvalConfig) -> dict:
    from medmo.eval.backends import checkpoint_fingerprint

    fingerprint = checkpoint_fingerprint(cfg.model) if cfg.backend != "openai" else None
    return {"model": cfg.model, "model_fingerprint": fingerprint, "backend": cfg.backend, "suite": cfg.suite,
            "protocol": cfg.protocol, "mode": cfg.mode, "shard": cfg.shard, "box_format": cfg.box_format,
            "grounding_protocol": cfg.grounding_protocol, "judge_model": cfg.judge.model if cfg.judge.enabled else None,
            "prompt_version": PROMPT_VERSION, "max_new_tokens": cfg.max_new_tokens or "per benchmark"}


def run(cfg: EvalConfig) -> Path:
    """Evaluate as configured; returns the run folder."""
    from medmo.eval.benchmarks import get_benchmark

    for name in cfg.benchmarks:  # unknown names fail here, before data or model load
        get_benchmark(name)
    i, n = parse_shard(cfg.shard)
    out = Path(cfg.out) / f"shard-{i}-of-{n}" if n > 1 else Path(cfg.out)
    if cfg.backend != "openai":  # the checkpoint's family says how its boxes read; --box-format overrides
        cfg.box_format = box_format_for(cfg.model, cfg.min_pixels, cfg.max_pixels, cfg.box_format)
    elif cfg.box_format == "resized":
        raise ValueError("--box-format resized takes its numbers from a checkpoint's processor; with --backend "
                         "openai give them: resized:FACTOR:MIN_PIXELS:MAX_PIXELS (Qwen2.5-VL: resized:28:3136:12845056)")
    header = header_of(cfg)
    check_resumable(out, header)
    units, skipped = [], {}
    if cfg.records:
        rows = read_record_rows(cfg.records)
        unit = records_unit(Path(cfg.records).stem, rows, base_dir=Path(cfg.records).parent,
                            options=ScoringOptions(cfg.mode, cfg.box_format, cfg.grounding_protocol))
        unit.max_new_tokens = cfg.max_new_tokens or default_max_new_tokens(unit.name, unit.family, cfg.protocol)
        units.append(unit)
    for name in cfg.benchmarks:
        try:
            units.append(benchmark_unit(name, cfg.data, cfg.mode, cfg.box_format, protocol=cfg.protocol,
                                        grounding_protocol=cfg.grounding_protocol, max_new_tokens=cfg.max_new_tokens))
        except (FileNotFoundError, ValueError) as e:
            if not cfg.skip_missing:
                raise
            logger.warning("skipping %s: %s", name, e)
            skipped[name] = str(e)
    if not units:
        raise ValueError("no benchmark could be loaded: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    out = make_run_dir(out, cfg)
    judge = Judge(cfg.judge, out / "judge_cache.jsonl") if cfg.judge.enabled else None
    header = {**header, "skipped": skipped} if skipped else header
    evaluate_units(units, out, _backend(cfg), judge, header, cfg.batch_size, cfg.limit, cfg.shard, cfg.plots)
    logger.info("results in %s", out / RESULTS_MD)
    return out


def evaluate_records(model, records: list[Record | dict], out_dir, *, base_dir=None, box_format: str = "grid",
                     backend: str = "hf", batch_size: int = 16, max_new_tokens: int = 256, mode: str = "strict",
                     name: str = "records", judge: JudgeConfig | None = None, plots: bool = False) -> dict:
    """Evaluate `records` (scored by task) and return their metrics (contract 3).

    `model` is a checkpoint path / hub id for `backend`, or any object with
    `.generations(list[Request]) -> list[Generation]` or `.generate(list[Request]) -> list[str]` (a
    backend already built, reused across calls; it keeps its own token budget).
    Re-running on the same `out_dir` resumes; if the folder holds another checkpoint's run
    (e.g. a stage retrained in place), its samples are moved aside and evaluation restarts.
    """
    rows = [r.to_dict() if isinstance(r, Record) else dict(r) for r in records]
    if hasattr(model, "generations") or hasattr(model, "generate"):
        gen, model_name = model, str(getattr(model, "name", type(model).__name__))
    else:
        from medmo.eval.backends import get_backend

        kw = {"batch_size": batch_size} if backend == "hf" else {}
        gen, model_name = get_backend(backend, model=model, max_new_tokens=max_new_tokens, **kw), str(model)
    out = make_run_dir(out_dir)
    judge_cfg = judge or JudgeConfig()
    judge_obj = Judge(judge_cfg, out / "judge_cache.jsonl") if judge_cfg.enabled else None
    unit = records_unit(name, rows, base_dir=base_dir, options=ScoringOptions(mode, box_format))
    header = {"model": model_name, "model_fingerprint": getattr(gen, "fingerprint", None), "backend": backend,
              "protocol": "default", "mode": mode, "box_format": box_format,
              "judge_model": judge_cfg.model if judge_cfg.enabled else None}
    return evaluate_units([unit], out, gen, judge_obj, header, batch_size, plots=plots,
                          restart_on_change=True)["benchmarks"][name]
