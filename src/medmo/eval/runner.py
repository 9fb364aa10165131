"""`medmo eval`: run a model on benchmarks or record files, score, and write the run folder.

    medmo eval --model runs/demo/stage3 --suite vqa --out runs/eval/vqa
    medmo eval --model MBZUAI/MedMO-8B --benchmark vqa_rad --data ~/data/vqa_rad --out runs/eval/rad
    medmo eval --model DIR --records my_boxes.jsonl --box-format grid --out runs/eval/mine
    medmo eval --model DIR --suite all --shard 0/4 --out runs/eval/all     # 4 machines, then
    medmo eval merge runs/eval/all/shard-*-of-4 --out runs/eval/all

Flow (`run`, then `evaluate_units`, top to bottom): the config is validated and every
benchmark name resolved before anything loads (`run_folder`); each benchmark, or the
record file, becomes a Unit (`load_units`, medmo.eval.units); then one pass:
1. plan: each unit cut to --limit and this --shard; what samples.jsonl already holds is
   not asked again (medmo.eval.units.plan: resume and sharding are the plan's);
2. generate: the plan's items go to the backend in chunks (`generate`: one Generation
   per request, medmo.eval.backends);
3. score: each response with its unit's scorer and ScoringOptions (benchmark rules, or by
   task for record files), then the judge on open answers (medmo.eval.samples), and the
   chunk is appended to samples.jsonl;
4. report: results.json, results.md and the plots from samples.jsonl (medmo.eval.results),
   so a resumed or merged run reports every sample.

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

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from medmo.config import make_run_dir, shipped_recipes
from medmo.data.schema import Record, resolve_image
from medmo.eval.backends import Generation, Request
from medmo.eval.judge import Judge, JudgeConfig
from medmo.eval.options import GroundingProtocol, Mode, ScoringOptions
from medmo.eval.results import RESULTS_MD, SAMPLES, check_resumable, finish, summaries
from medmo.eval.samples import CUT, Sample, SampleLog, asked, failed, judge_samples, read_record_rows, score_sample
from medmo.eval.units import Item, Unit, benchmark_unit, default_max_new_tokens, parse_shard, plan, records_unit
from medmo.model.families import box_format_for, check_box_format
from medmo.model.prompts import PROMPT_VERSION

logger = logging.getLogger(__name__)
RECIPES = shipped_recipes() / "eval"  # the suites, wherever medmo is installed


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
    mode: Mode | None = field(default=None, metadata={
        "help": "answer scoring rules, see medmo.eval.options (default strict; with --protocol paper: medevalkit)"})
    box_format: str | None = field(default=None, metadata={
        "help": "coordinates in responses: grid (0-1000), pixels (of the original image) or resized (of the "
                "processor's resized input); default: the model family's (Qwen2.5-VL: resized)"})
    grounding_protocol: GroundingProtocol | None = field(default=None, metadata={
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
            raise ValueError(f"grounding_protocol must be one of {GROUNDING_PROTOCOLS}, "
                             f"got {self.grounding_protocol!r}")
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


def run(cfg: EvalConfig) -> Path:
    """Evaluate as configured; returns the run folder."""
    out, header = run_folder(cfg)
    units, skipped = load_units(cfg)
    out = make_run_dir(out, cfg)
    judge = Judge(cfg.judge, out / "judge_cache.jsonl") if cfg.judge.enabled else None
    header = {**header, "skipped": skipped} if skipped else header
    evaluate_units(units, out, _backend(cfg), judge, header, cfg.batch_size, cfg.limit, cfg.shard, cfg.plots)
    logger.info("results in %s", out / RESULTS_MD)
    return out


def evaluate_units(units: list[Unit], out: Path, backend, judge: Judge | None, header: dict, batch_size: int,
                   limit: int | None = None, shard: str = "0/1", plots: bool = True,
                   restart_on_change: bool = False) -> dict:
    """Plan, generate, score, report: each step once, in this order; returns the results dict.

    Resume and sharding are the plan's (medmo.eval.units.plan): it holds only this shard's
    items that samples.jsonl does not already hold, plus, with a judge, finished samples the
    judge could not decide (their saved response is scored and judged again; only a decided
    one is written again). Samples are appended chunk by chunk, so an interruption loses one chunk."""
    check_resumable(out, header, restart=restart_on_change)
    log = SampleLog(out / SAMPLES)
    todo = plan(units, log.latest(), limit=limit, shard=shard, rejudge=judge is not None)
    logger.info("%d sample(s) to evaluate, %d already done in %s", todo.new, todo.done, log.path)
    with tqdm(total=todo.new, unit="sample", dynamic_ncols=True) as progress:
        # a chunk's images are all in memory at once: a few batches give length sorting room, no more
        for chunk in todo.chunks(batch_size * 2):
            progress.set_description(chunk[0].unit.name)
            samples = [s if s.get("failure") else score_sample(s, it.unit.score, it.unit.options)
                       for it, s in zip(chunk, generate(chunk, backend))]
            judge_samples([s for s in samples if not s.get("failure")], judge)
            log.extend(s for it, s in zip(chunk, samples) if it.saved is None or s.get("judge_status") == "judged")
            progress.update(sum(it.saved is None for it in chunk))
    return finish(out, header, summaries(todo.units, log, header), plots)


def generate(chunk: list[Item], backend) -> list[Sample]:
    """Each item's response and how generation ended (a saved one is reused), or why it could not be asked."""
    out: list[Sample] = []
    asks: list[tuple[int, Request]] = []
    for it in chunk:
        if it.saved is not None:
            s = it.saved
            out.append(asked(it.record, s.get("response") or "", s.get("finish_reason"), s.get("tokens"),
                             cut=CUT in s.get("issues", [])))
        elif it.record.get("failure"):  # a malformed row of a record file
            out.append(dict(it.record))  # type: ignore[arg-type]
        else:
            request, failure = build_request(it.record, it.unit.base_dir, it.unit.max_new_tokens)
            if failure:
                out.append(failed(it.record, *failure))
            else:
                asks.append((len(out), request))
                out.append({})  # type: ignore[typeddict-item]
    default_budget = getattr(backend, "max_new_tokens", None)
    for (i, _), gen in zip(asks, generations(backend, [q for _, q in asks]) if asks else []):
        rec, budget = chunk[i].record, chunk[i].unit.max_new_tokens or default_budget
        out[i] = failed(rec, "backend_error", gen.error) if gen.error else asked(
            rec, gen.text, gen.finish_reason, gen.tokens, cut=is_cut(gen, budget))
    for it, s in zip(chunk, out):
        s["benchmark"] = it.unit.name
    return out


def build_request(rec: dict, base_dir: Path | None, max_new_tokens: int | None = None):
    """(Request, None) for a record, or (None, (reason, message)) when it cannot be asked."""
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


def generations(backend, requests: list[Request]) -> list[Generation]:
    """One Generation per request; a failing batch is retried one by one to isolate the bad item.

    A backend without `generations` (any object with `.generate(requests) -> list[str]`)
    reports text only: nothing is known about cut answers there."""
    try:
        if hasattr(backend, "generations"):
            return backend.generations(requests)
        return [Generation(text) for text in backend.generate(requests)]
    except Exception as e:  # noqa: BLE001 - e.g. an image the processor rejects; isolate it below
        if len(requests) == 1:
            return [Generation(error=f"{type(e).__name__}: {e}")]
        logger.warning("batch of %d failed (%s); retrying one at a time", len(requests), e)
    return [generations(backend, [r])[0] for r in requests]


def is_cut(gen: Generation, budget: int | None) -> bool:
    """Cut at the token budget: the backend says so, or (when it does not say why it ended) it
    generated the whole budget."""
    if gen.finish_reason is not None:
        return gen.finish_reason == "length"
    return budget is not None and gen.tokens is not None and gen.tokens >= budget


# ---------------------------------------------------------------------------- the run's setup


def run_folder(cfg: EvalConfig) -> tuple[Path, dict]:
    """The run folder (a shard's own) and the header of its results; fails before any data or model
    loads on an unknown benchmark, an unusable box format or a folder holding another run."""
    from medmo.eval.benchmarks import get_benchmark

    for name in cfg.benchmarks:
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
    return out, header


def load_units(cfg: EvalConfig) -> tuple[list[Unit], dict[str, str]]:
    """The record file and each benchmark as a Unit, and the benchmarks skipped (--skip-missing) with why."""
    options = ScoringOptions(cfg.mode, cfg.box_format, cfg.grounding_protocol)
    units, skipped = [], {}
    if cfg.records:
        rows = read_record_rows(cfg.records)
        unit = records_unit(Path(cfg.records).stem, rows, base_dir=Path(cfg.records).parent, options=options)
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
    return units, skipped


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


def evaluate_records(model, records: list[Record | dict], out_dir, *, base_dir=None, box_format: str = "grid",
                     backend: str = "hf", batch_size: int = 16, max_new_tokens: int = 256, mode: str = "strict",
                     name: str = "records", judge: JudgeConfig | None = None, plots: bool = False) -> dict:
    """Evaluate `records` (scored by task) and return their metrics.

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
