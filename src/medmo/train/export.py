"""`medmo export RUN_DIR --out DIR`: a training run -> a standard Hugging Face checkpoint.

    medmo export runs/medmo-4b --out MedMO-4B                 # a pipeline folder (stages.json)
    medmo export runs/demo/stage3_sft --out tiny-medmo        # one stage's run folder
    medmo export runs/medmo-8b/stage1_sft --out s1 --checkpoint last   # an unfinished stage

The exported folder loads with `Qwen3VLForConditionalGeneration.from_pretrained` and
`AutoProcessor.from_pretrained`, with no medmo and no PEFT: LoRA adapters (a checkpoint of
a LoRA run holds only adapters) are merged into the base weights. It also gets a model card
(README.md) built from what the run folders hold: every stage in order (trainer, starting
model, data files and their record counts, resolution budget, steps, last logged loss or
reward) and every evaluation result found below RUN_DIR (results.json files), plus
`medmo_export.json`, the same facts as JSON.

Which weights: the last stage's final model (its run folder root), or with `checkpoint`
a checkpoint-* folder of that stage ("last" = the newest).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from medmo.model.load import DTYPES, Dtype

logger = logging.getLogger(__name__)

STAGE_CLASSES = ("SFTConfig", "GRPOConfig")
CARD_METRICS = ("n", "accuracy", "closed_accuracy", "open_accuracy", "mean_iou", "iou@0.3", "iou@0.5", "iou@0.7",
                "parse_failures", "rouge_l", "cider_d", "bleu4", "rule_chexpert_f1_micro14")


@dataclass
class ExportConfig:
    """`medmo export`. Every field is a command-line option."""

    run_dir: str = field(metadata={
        "help": "a stage's run folder, or a pipeline/demo folder of stages (e.g. runs/medmo-4b)"})
    out: str = field(metadata={"help": "folder for the checkpoint, processor and README.md"})
    checkpoint: str | None = field(default=None, metadata={
        "help": "export a checkpoint of the last stage instead of its final model: 'last' or 'checkpoint-N'"})
    dtype: Dtype = field(default="auto", metadata={"help": "weights dtype (auto: as trained)"})
    name: str | None = field(default=None, metadata={
        "help": "model name in the card (default: the --out folder name)"})

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if not Path(self.run_dir).is_dir():
            raise FileNotFoundError(f"run folder {self.run_dir} does not exist")


# ---------------------------------------------------------------------------- what the run holds


def find_stages(run_dir: Path) -> list[Path]:
    """Stage run folders in training order: stages.json (pipeline), else folders with a stage config.yaml."""
    if (run_dir / "stages.json").exists():
        return [Path(s["run_dir"]) for s in json.loads((run_dir / "stages.json").read_text())]
    candidates = [run_dir, *sorted(p for p in run_dir.iterdir() if p.is_dir())]
    stages = [p for p in candidates if _stage_config(p) is not None]
    return sorted(stages, key=lambda p: (p / "config.yaml").stat().st_mtime)


def _stage_config(folder: Path) -> dict | None:
    path = folder / "config.yaml"
    if not path.exists():
        return None
    doc = yaml.safe_load(path.read_text()) or {}
    return doc if doc.get("config_class") in STAGE_CLASSES else None


def weights_folder(stage_dir: Path, checkpoint: str | None) -> Path:
    """The folder holding the weights to export (a full model or a LoRA adapter)."""
    if checkpoint is None:
        if (stage_dir / "config.json").exists():
            return stage_dir
        raise FileNotFoundError(f"{stage_dir} has no final model (no config.json): the stage did not finish. "
                                f"Resume it, or export a checkpoint with --checkpoint last")
    if checkpoint == "last":
        from medmo.train.callbacks import last_checkpoint

        found = last_checkpoint(stage_dir)
        if found is None:
            raise FileNotFoundError(f"{stage_dir} holds no checkpoint-* folder")
        return Path(found)
    path = stage_dir / checkpoint
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist; checkpoints here: "
                                f"{', '.join(p.name for p in stage_dir.glob('checkpoint-*')) or 'none'}")
    return path


def stage_summary(stage_dir: Path) -> dict:
    """What the card says about one stage, from its config.yaml, log.jsonl and trainer state."""
    from medmo.train.callbacks import read_log

    doc = _stage_config(stage_dir) or {}
    cfg = doc.get("config", {})
    log = read_log(stage_dir / "log.jsonl")
    last = {k: r[k] for r in log for k in ("loss", "reward") if isinstance(r.get(k), (int, float))}
    steps = max((r.get("step", 0) for r in log), default=0)
    return {"stage": stage_dir.name, "trainer": cfg.get("trainer", doc.get("config_class")), "model": cfg.get("model"),
            "data": [{"path": d, "records": _count_records(d)} for d in cfg.get("data", [])],
            "max_pixels": cfg.get("max_pixels"), "lora": bool((cfg.get("lora") or {}).get("enabled")),
            "learning_rate": cfg.get("learning_rate"), "steps": steps, **{f"last_{k}": v for k, v in last.items()},
            "git_sha": doc.get("git_sha")}


def _count_records(path: str) -> int | None:
    files = sorted(Path(path).glob("*.jsonl")) if Path(path).is_dir() else [Path(path)]
    if not files or not all(f.suffix == ".jsonl" and f.exists() for f in files):
        return None  # parquet or absent on this machine: the card shows the path only
    return sum(sum(1 for line in f.open(encoding="utf-8") if line.strip()) for f in files)


def find_results(run_dir: Path) -> list[dict]:
    """Every results.json below run_dir, flattened to {"file", "name", metric: value} rows."""
    rows = []
    for path in sorted(run_dir.rglob("results.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            logger.warning("skipping unreadable %s: %s", path, e)
            continue
        rel = str(path.relative_to(run_dir))
        if isinstance(doc.get("stages"), list):  # `medmo demo`: one row per stage
            rows += [{"file": rel, "name": r.get("stage", "?"), **_metrics(r)} for r in doc["stages"]]
        elif _metrics(doc):
            rows.append({"file": rel, "name": path.parent.name, **_metrics(doc)})
        else:  # {benchmark: {metric: value}}
            rows += [{"file": rel, "name": k, **_metrics(v)} for k, v in doc.items()
                     if isinstance(v, dict) and _metrics(v)]
    return rows


def _metrics(d: dict) -> dict:
    return {k: d[k] for k in CARD_METRICS if isinstance(d.get(k), (int, float)) and not isinstance(d.get(k), bool)}


# ---------------------------------------------------------------------------- the card


def model_card(name: str, base: str | None, stages: list[dict], results: list[dict], source: Path) -> str:
    tags = "\n".join(f"- {t}" for t in ("medical", "medmo", "qwen3-vl", "image-text-to-text"))
    lines = ["---", "library_name: transformers", "pipeline_tag: image-text-to-text",
             *([f"base_model: {base}"] if base and not Path(base).exists() else []), f"tags:\n{tags}", "---", "",
             f"# {name}", "",
             "A Qwen3-VL model post-trained for medical images with medmo "
             "(an open implementation of the MedMO recipe). "
             f"Exported by `medmo export` from `{source}`; LoRA adapters, if any, are merged.", "",
             "## Training stages", "",
             "| # | stage | trainer | started from | data (records) | max pixels | LoRA | steps | last loss / reward |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, s in enumerate(stages, 1):
        data = "<br>".join(f"`{d['path']}`" + (f" ({d['records']:,})" if d["records"] is not None else "")
                           for d in s["data"]) or "-"
        last = s.get("last_loss", s.get("last_reward"))
        lines.append(f"| {i} | {s['stage']} | {s['trainer']} | `{s['model']}` | {data} | {s['max_pixels'] or '-'} | "
                     f"{'yes' if s['lora'] else 'no'} | {s['steps']} | {'-' if last is None else f'{last:.4g}'} |")
    lines += ["", "## Evaluation", ""]
    if results:
        cols = [m for m in CARD_METRICS if any(m in r for r in results)]
        lines += ["| results file | set | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
        for r in results:
            cells = [("-" if m not in r else f"{r[m]:.4g}") for m in cols]
            lines.append(f"| `{r['file']}` | {r['name']} | " + " | ".join(cells) + " |")
        lines += ["", "Fractions in [0, 1] as written by medmo (`n` and `parse_failures` are counts)."]
    else:
        lines.append("No results.json was found in the run folders: evaluate with `medmo eval --model <this folder>`.")
    lines += ["", "## Use", "", "```python", "from transformers import AutoProcessor, Qwen3VLForConditionalGeneration",
              "", f'model = Qwen3VLForConditionalGeneration.from_pretrained("{name}", dtype="auto")',
              f'processor = AutoProcessor.from_pretrained("{name}")', "```", "",
              f"or `medmo infer --model {name} --image scan.png --prompt \"Locate the lesion.\"`.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- run


def load_merged(folder: Path, dtype: str):
    """(model, processor source) from a full checkpoint or a LoRA adapter folder (merged)."""
    from medmo.model.load import load_model

    if not (folder / "adapter_config.json").exists():
        return load_model(folder, dtype=dtype), folder
    from peft import PeftModel

    base = json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
    logger.info("merging LoRA adapter %s into %s", folder, base)
    model = PeftModel.from_pretrained(load_model(base, dtype=dtype), str(folder))
    merged = model.merge_and_unload()
    processor_src = folder if (folder / "preprocessor_config.json").exists() else Path(base)
    return merged, processor_src


def run(cfg: ExportConfig) -> Path:
    """Write the merged checkpoint, processor, README.md and medmo_export.json to cfg.out."""
    from medmo.model.load import load_processor

    run_dir = Path(cfg.run_dir)
    stages = find_stages(run_dir)
    if not stages:
        raise FileNotFoundError(f"{run_dir} holds no training run (no config.yaml of a sft/grpo stage, no stages.json)")
    source = weights_folder(stages[-1], cfg.checkpoint)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model, processor_src = load_merged(source, cfg.dtype)
    model.save_pretrained(out)
    load_processor(processor_src).save_pretrained(out)
    summaries = [stage_summary(s) for s in stages]
    results = find_results(run_dir)
    name = cfg.name or out.name
    (out / "README.md").write_text(model_card(name, summaries[0]["model"], summaries, results, source))
    (out / "medmo_export.json").write_text(json.dumps({"source": str(source), "stages": summaries,
                                                       "results": results}, indent=2))
    logger.info("exported %s -> %s (%d stages, %d result rows)", source, out, len(summaries), len(results))
    return out
