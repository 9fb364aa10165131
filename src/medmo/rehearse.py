"""`medmo train RECIPE --rehearse --data-root DIR`: a recipe run as shipped, on CPU, in minutes.

    medmo train recipes/medmo-8b/pipeline.yaml --rehearse --data-root ../shared/data
    medmo train recipes/medmo-4b/stage4_grpo.yaml --rehearse --data-root ~/downloads --out runs/try

Before booking GPUs, a user checks the wiring of a recipe: the same stages, mixture
recipes, reward terms and weights, packing, module freezing and LoRA settings, on the
tiny Qwen3-VL (medmo.model.tiny, same classes and code path as the 8B model). For each
stage, in order:

1. **Data.** Each source of the stage's mixture (`mixture:` key) is converted from the raw
   release under DIR (one folder per source, named after its converter, as
   `medmo data convert` reads it; a suffixed folder such as `iu_xray_medevalkit` is taken
   when the plain name is absent). Every split found is used, test splits included: a
   rehearsal checks wiring, never learning, and says so. Sources not found, or whose
   conversion fails, are skipped and counted with the reason; derived sets
   (`derive: retrieval`) are built from their converted source. A stage with no source
   left fails with a message that names the folders it looked for.
2. **Mix** with the mixture recipe's weights and `total` scaled to `samples`
   (`resize_images` is not rehearsed).
3. **Stand-in images.** Many public releases ship annotations apart from their images
   (NIH boxes, SLAKE, MedSG-Bench). A mixed record's missing image is replaced by a grey
   stand-in of the record's size (`answer.image_size`, else 512 x 512) with its
   ground-truth boxes outlined, so that grounding, packing and reward code run on real
   annotations; stand-ins are counted per source.
4. **Train** a few steps (`steps`) from the previous stage's output, with the sizes scaled
   to a CPU: the pixel budget, row length, batch, accumulation, rollouts and completion
   length are capped, GPU-only settings (bf16, vLLM, flash attention) are turned off.
   Every change is listed in the stage's row of results.json, the rest is the recipe's.
5. **Export and evaluate**: the last stage is exported as a Hugging Face checkpoint
   (`medmo export`) and evaluated on every benchmark of the `all` suite whose data is
   under DIR (`eval_limit` items each, missing ones listed as skipped).

Outputs in `out` (default runs/rehearse/<recipe name>): results.json, results.md (one
row per stage: samples, skips by reason, steps, loss or reward first -> last; then the
evaluation), each stage's run folder, data/ (converted sources), mix/, standins/,
export/ and eval/. Re-running reuses converted data and finished stages.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medmo.config import load_config, make_run_dir

logger = logging.getLogger(__name__)

STANDIN_SIZE = (512, 512)  # a missing image without a recorded size


@dataclass
class RehearseConfig:
    """`medmo train RECIPE --rehearse`: every field is an option or a key=value override."""

    recipe: str = field(metadata={"help": "a pipeline or stage recipe (recipes/medmo-8b/pipeline.yaml)"})
    data_root: str = field(metadata={
        "help": "--rehearse: raw releases, one folder per source (e.g. ../shared/data)"})
    out: str | None = field(default=None, metadata={
        "help": "--rehearse: run folder (default runs/rehearse/<recipe name>)"})
    steps: int = field(default=2, metadata={"help": "optimizer steps per stage"})
    samples: int = field(default=48, metadata={"help": "records per stage mixture (its `total`, scaled down)"})
    max_pixels: int = field(default=256 * 256, metadata={"help": "per image (64 visual tokens on the tiny model)"})
    max_length: int = field(default=2048, metadata={"help": "packed row / sample token budget"})
    batch_size: int = field(default=2, metadata={"help": "SFT rows per step (no accumulation)"})
    num_generations: int = field(default=4, metadata={"help": "GRPO answers per prompt (one prompt per step)"})
    max_completion_length: int = field(default=32, metadata={"help": "GRPO tokens per answer"})
    eval_limit: int = field(default=4, metadata={
        "help": "items per benchmark in the final evaluation (0: no evaluation)"})
    eval_suite: str = field(default="all", metadata={
        "help": "the suite whose benchmarks are looked for under data_root"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: min(2, cores))"})

    def __post_init__(self):
        if not Path(self.recipe).is_file():
            raise FileNotFoundError(f"recipe {self.recipe} does not exist")
        if not Path(self.data_root).is_dir():
            raise FileNotFoundError(f"--data-root {self.data_root} is not a folder; point it at the raw releases, "
                                    f"one folder per source (e.g. ../shared/data)")
        for name in ("steps", "samples", "max_pixels", "max_length", "batch_size", "max_completion_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise ValueError("num_generations must be >= 2: GRPO compares answers within a group")
        if self.eval_limit < 0:
            raise ValueError(f"eval_limit must be >= 0, got {self.eval_limit}")


@dataclass
class SourceReport:
    """What happened to one mixture source."""

    name: str
    status: str  # "used", or why it was skipped
    records: int = 0
    by_split: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    folder: str | None = None


# ---------------------------------------------------------------------------- data


def raw_folder(root: Path, converter: str) -> Path | None:
    """The release of `converter` under root: root/<name>, else one root/<name>_* folder."""
    plain = root / converter
    if plain.exists():
        return plain
    suffixed = sorted(p for p in root.glob(f"{converter}_*") if p.is_dir())
    return suffixed[0] if len(suffixed) == 1 else None


def convert_source(converter: str, root: Path, data_dir: Path) -> SourceReport:
    """Convert one release (once: a folder with report.json is reused)."""
    from medmo.data.convert import ConvertConfig, run as convert

    out = data_dir / converter
    report = out / "report.json"
    if not report.exists():
        raw = raw_folder(root, converter)
        if raw is None:
            return SourceReport(converter, f"not found: no {root / converter}/")
        try:
            convert(ConvertConfig(source=converter, raw=str(raw), out=str(out)))
        except (ValueError, FileNotFoundError, OSError) as e:
            return SourceReport(converter, f"conversion failed: {str(e).splitlines()[0][:200]}")
    rep = json.loads(report.read_text())
    if not rep.get("kept"):
        return SourceReport(converter, "no records", dropped=rep.get("dropped", {}).get("by_reason", {}))
    return SourceReport(converter, "used", rep["kept"], rep.get("kept_by_split", {}),
                        rep.get("dropped", {}).get("by_reason", {}), str(out))


def derive_source(name: str, base: SourceReport, data_dir: Path) -> SourceReport:
    from medmo.data.retrieval import RetrievalConfig, build

    if base.status != "used":
        return SourceReport(name, f"its source {base.name}: {base.status}")
    out = data_dir / name
    if not (out / "report.json").exists():
        try:
            build(RetrievalConfig(src=base.folder, out=str(out)))
        except ValueError as e:
            return SourceReport(name, f"retrieval failed: {str(e).splitlines()[0][:200]}")
    rep = json.loads((out / "report.json").read_text())
    return SourceReport(name, "used", rep["kept"], rep.get("kept_by_split", {}),
                        rep.get("dropped", {}).get("by_reason", {}), str(out))


def stand_in(path: str, record: dict, folder: Path) -> str:
    """A grey image of the record's size with its boxes outlined, written once; its path."""
    from PIL import Image, ImageDraw

    answer = record.get("answer") or {}
    size = tuple(int(v) for v in (answer.get("image_size") or STANDIN_SIZE))
    boxes = [b["bbox"] for b in answer.get("boxes") or []]
    key = hashlib.blake2b(f"{path}|{size}|{boxes}".encode(), digest_size=10).hexdigest()
    dst = folder / f"{key}.png"
    if not dst.exists():
        folder.mkdir(parents=True, exist_ok=True)
        im = Image.new("L", size, 96)
        draw = ImageDraw.Draw(im)
        for x1, y1, x2, y2 in boxes:
            draw.rectangle([x1, y1, max(x1, x2), max(y1, y2)], outline=255, width=2)
        tmp = dst.with_suffix(f".{os.getpid()}.tmp")
        im.save(tmp, format="PNG")
        os.replace(tmp, dst)
    return str(dst)


def stand_in_images(folder: Path, standins: Path) -> dict[str, int]:
    """Replace missing images in a mixed folder's shards (rewritten in place); {source: images replaced}."""
    from medmo.data.schema import resolve_image
    from medmo.data.shards import iter_shard, shard_files

    marker = folder / "standins.json"
    if marker.exists():
        return json.loads(marker.read_text())
    n: Counter = Counter()
    for shard in shard_files(folder):
        rows, changed = [], False
        for d in iter_shard(shard):
            images = []
            for p in d.get("images") or []:
                if not resolve_image(p, shard.parent).exists():
                    p, changed = stand_in(p, d, standins), True
                    n[d.get("source", "?")] += 1
                images.append(p)
            d["images"] = images
            rows.append(d)
        if changed:
            _rewrite(shard, rows)
    marker.write_text(json.dumps(dict(n)))
    return dict(n)


def _rewrite(shard: Path, rows: list[dict]) -> None:
    from medmo.data.schema import write_jsonl, write_parquet

    tmp = shard.with_name(f".{shard.name}.{os.getpid()}.tmp{shard.suffix}")
    (write_parquet if shard.suffix == ".parquet" else write_jsonl)(rows, tmp)
    os.replace(tmp, shard)


def stage_data(mixture_path: str, cfg: RehearseConfig, out: Path, stage: str,
               converted: dict[str, SourceReport]) -> tuple[Path, list[SourceReport], dict[str, int]]:
    """Convert (once), mix and stand in one stage's sources; (mixed folder, per-source reports, stand-ins)."""
    from medmo.data.mixture import MixSource, MixtureConfig, run as mix

    recipe = load_config(MixtureConfig, mixture_path)
    root, data_dir = Path(cfg.data_root), out / "data"
    reports, used = [], []
    for s in recipe.sources:
        if s.converter not in converted:
            converted[s.converter] = convert_source(s.converter, root, data_dir)
        rep = converted[s.converter]
        if s.derive == "retrieval":
            if s.name not in converted:
                converted[s.name] = derive_source(s.name, rep, data_dir)
            rep = converted[s.name]
        reports.append(SourceReport(**{**asdict(rep), "name": s.name}))
        if rep.status == "used":
            used.append(MixSource(name=s.name, path=rep.folder, weight=s.weight))
    if not used:
        looked = ", ".join(sorted({f"{s.converter}/" for s in recipe.sources}))
        raise ValueError(f"stage {stage}: no data: none of the sources of {mixture_path} was found or converted "
                         f"under {root} (looked for {looked}); put at least one release there "
                         f"(see `medmo data convert SOURCE --help`)")
    mixed = out / "mix" / stage
    if not (mixed / "mixture.json").exists():
        # resize_images is left off: it would drop the records whose images are stood in below
        mix(MixtureConfig(out=str(mixed), sources=used, name=recipe.name, total=cfg.samples, seed=recipe.seed,
                          max_pixels=min(recipe.max_pixels, cfg.max_pixels), shuffle_buffer=min(recipe.shuffle_buffer, 1000),
                          format=recipe.format))
    return mixed, reports, stand_in_images(mixed, out / "standins")


# ---------------------------------------------------------------------------- training


def scale_stage(kind: str, stage_cfg, cfg: RehearseConfig) -> dict[str, tuple]:
    """Cap a stage config's sizes for a CPU, in place; {field: (recipe value, rehearsal value)}."""
    caps = {"max_steps": cfg.steps, "save_steps": cfg.steps, "logging_steps": 1, "gradient_accumulation_steps": 1,
            "dtype": "float32", "bf16": False, "report_to": "none", "max_samples": None}
    caps["max_pixels"] = min(stage_cfg.max_pixels or cfg.max_pixels, cfg.max_pixels)
    if stage_cfg.min_pixels and stage_cfg.min_pixels > caps["max_pixels"]:
        caps["min_pixels"] = caps["max_pixels"]
    if "flash" in str(stage_cfg.attn_implementation or ""):
        caps["attn_implementation"] = "sdpa"
    caps["dataset_num_proc"] = min(stage_cfg.dataset_num_proc, 2)
    if kind == "grpo":
        n = min(stage_cfg.num_generations, cfg.num_generations)
        caps.update(num_generations=n, per_device_train_batch_size=n, use_vllm=False,
                    max_completion_length=min(stage_cfg.max_completion_length, cfg.max_completion_length))
    else:
        caps.update(per_device_train_batch_size=min(stage_cfg.per_device_train_batch_size, cfg.batch_size),
                    dataloader_num_workers=min(stage_cfg.dataloader_num_workers, 1))
        if stage_cfg.max_length:
            caps["max_length"] = min(stage_cfg.max_length, cfg.max_length)
    changed = {}
    for name, value in caps.items():
        old = getattr(stage_cfg, name)
        if old != value:
            changed[name] = (old, value)
            setattr(stage_cfg, name, value)
    return changed


def curve(run_dir: Path, kind: str) -> dict:
    """First and last logged loss (SFT) or reward (GRPO) of a stage."""
    from medmo.train.callbacks import read_log

    key = "reward" if kind == "grpo" else "loss"
    vals = [r[key] for r in read_log(run_dir / "log.jsonl") if isinstance(r.get(key), (int, float))]
    return {"metric": key, "first": vals[0] if vals else None, "last": vals[-1] if vals else None,
            "logged_steps": len(vals)}


def training_set(run_dir: Path) -> dict:
    """Rows of a stage's training set and its skips by reason: building the set (dataset/meta.json)
    and, where the log counts them, the packing plan and the batches (`skipped/<reason>`)."""
    from medmo.train.callbacks import read_log

    meta = run_dir / "dataset" / "meta.json"
    if not meta.exists():
        return {}
    m = json.loads(meta.read_text())
    skipped = dict(m.get("skipped", {}))
    last = next((r for r in reversed(read_log(run_dir / "log.jsonl")) if any(k.startswith("skipped/") for k in r)), {})
    skipped.update({k.split("/", 1)[1]: v for k, v in last.items() if k.startswith("skipped/") and v})
    return {"samples": m.get("rows"), "skipped": skipped}


def task_counts(mixed: Path) -> dict:
    from medmo.data.shards import iter_records

    return dict(Counter(d["task"] for d, _ in iter_records(mixed)))


# ---------------------------------------------------------------------------- run


def stages_of(cfg: RehearseConfig, out: Path, tiny: Path) -> list[tuple[str, object]]:
    """The recipe's stages (a pipeline's, or the one stage), starting from the tiny model, run folders in out."""
    from medmo.train import load_recipe, recipe_kind
    from medmo.train.pipeline import stage_configs

    kind = recipe_kind(cfg.recipe)
    if kind == "pipeline":
        return stage_configs(load_recipe(cfg.recipe, model=str(tiny), output_dir=str(out)))
    return [(kind, load_recipe(cfg.recipe, model=str(tiny), output_dir=str(out / Path(cfg.recipe).stem)))]


def default_out(recipe: str) -> str:
    """runs/rehearse/medmo-8b for recipes/medmo-8b/pipeline.yaml, runs/rehearse/stage4_grpo for a stage."""
    p = Path(recipe)
    return f"runs/rehearse/{p.parent.name if p.stem == 'pipeline' else p.stem}"


def run(cfg: RehearseConfig) -> Path:
    """Rehearse the recipe; returns the run folder (results.json, results.md)."""
    import torch

    from medmo.model.tiny import build_tiny
    from medmo.train import RUNNERS

    torch.set_num_threads(cfg.threads or min(2, os.cpu_count() or 1))
    out = make_run_dir(cfg.out or default_out(cfg.recipe), cfg)
    t0 = time.perf_counter()
    tiny = out / "tiny"
    if not (tiny / "config.json").exists():
        build_tiny(tiny)
    converted: dict[str, SourceReport] = {}
    rows = []
    for kind, stage_cfg in stages_of(cfg, out, tiny):
        run_dir, t_stage = Path(stage_cfg.output_dir), time.perf_counter()
        if stage_cfg.mixture:
            mixed, sources, standins = stage_data(stage_cfg.mixture, cfg, out, run_dir.name, converted)
            stage_cfg.data = [str(mixed)]
        else:
            missing = [d for d in stage_cfg.data if not Path(d).exists()]
            if missing:
                raise ValueError(f"stage {run_dir.name}: no `mixture:` key to build its data from, and its data "
                                 f"{missing} does not exist; add `mixture: recipes/data/<stage>_mix.yaml` to the recipe")
            mixed, sources, standins = None, [], {}
        scaled = scale_stage(kind, stage_cfg, cfg)
        if not (run_dir / "config.json").exists():
            logger.info("rehearsal: stage %s (%s), %d steps", run_dir.name, kind, stage_cfg.max_steps)
            RUNNERS.get(kind).run(stage_cfg)
        rows.append({"stage": run_dir.name, "kind": kind, **training_set(run_dir), "steps": stage_cfg.max_steps,
                     **curve(run_dir, kind), "tasks": task_counts(mixed) if mixed else {},
                     "sources": [asdict(s) for s in sources], "standin_images": standins, "scaled": {k: list(v) for k, v in scaled.items()},
                     "seconds": round(time.perf_counter() - t_stage, 1)})
    results = {"recipe": cfg.recipe, "data_root": cfg.data_root, "stages": rows,
               "note": "a wiring check on the tiny model: every split found was used, test splits included; "
                       "the numbers say the recipe runs, not how well it trains"}
    results["export"] = str(export(run_dir, out / "export"))
    results["eval"] = evaluate(out / "export", cfg, out / "eval") if cfg.eval_limit else {}
    results["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    table = results_table(results)
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"\n{out}/: results.json, results.md ({results['seconds'] / 60:.1f} min)")
    return out


def export(run_dir: Path, dest: Path) -> Path:
    from medmo.train.export import ExportConfig, run as export_run

    if (dest / "config.json").exists():
        return dest
    return export_run(ExportConfig(run_dir=str(run_dir), out=str(dest)))


def evaluate(model: Path, cfg: RehearseConfig, dest: Path) -> dict:
    """Every benchmark of the suite whose data is under data_root, `eval_limit` items each."""
    from medmo.eval.runner import EvalConfig, run as eval_run, suite_path

    ecfg = load_config(EvalConfig, suite_path(cfg.eval_suite), (), model=str(model), data=cfg.data_root,
                       limit=cfg.eval_limit, out=str(dest), skip_missing=True, plots=False, max_new_tokens=32,
                       batch_size=8)
    eval_run(ecfg)
    return json.loads((dest / "results.json").read_text())


# ---------------------------------------------------------------------------- table


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def results_table(results: dict) -> str:
    lines = ["| stage | samples | tasks | sources used / skipped | skips | steps | loss or reward first -> last | s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["stages"]:
        used = [s["name"] for s in r["sources"] if s["status"] == "used"]
        skipped = [f"{s['name']} ({s['status'].split(':')[0]})" for s in r["sources"] if s["status"] != "used"]
        stand = sum(r["standin_images"].values())
        skips = ", ".join(f"{k}: {v}" for k, v in (r.get("skipped") or {}).items()) or "none"
        lines.append(f"| {r['stage']} | {_fmt(r.get('samples'))} | "
                     f"{', '.join(f'{k} {v}' for k, v in sorted(r['tasks'].items())) or '-'} | "
                     f"{', '.join(used) or '-'} / {', '.join(skipped) or '-'}"
                     f"{f' ({stand} stand-in images)' if stand else ''} | {skips} | {r['steps']} | "
                     f"{r['metric']} {_fmt(r['first'])} -> {_fmt(r['last'])} | {r['seconds']} |")
    ev = results.get("eval") or {}
    if ev.get("benchmarks"):
        lines += ["", "| benchmark | scored | failed (by reason) | headline |", "|---|---|---|---|"]
        for name, m in sorted(ev["benchmarks"].items()):
            head = next((k for k in ("accuracy", "mean_iou", "rouge_l") if isinstance(m.get(k), (int, float))), None)
            failed = ", ".join(f"{k}: {v}" for k, v in (m.get("failures") or {}).items()) or "-"
            lines.append(f"| {name} | {_fmt(m.get('n'))} | {failed} | {f'{head} {_fmt(m[head])}' if head else '-'} |")
    if ev.get("skipped"):
        lines += ["", f"benchmarks without data under {results['data_root']}: {', '.join(sorted(ev['skipped']))}"]
    lines += ["", results["note"]]
    return "\n".join(lines)
