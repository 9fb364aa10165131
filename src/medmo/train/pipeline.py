"""Chain training stages: each stage starts from the previous stage's output.

    medmo train recipes/tiny/pipeline.yaml
    medmo train recipes/tiny/pipeline.yaml model=runs/my_base 'overrides=[max_steps=5]'

A pipeline recipe lists stage recipes (SFT or GRPO, each a normal recipe file with its
`trainer:` key). Stage i runs in `output_dir/<stage recipe name>/` with `model` set to
stage i-1's run folder (the first stage uses the pipeline's `model`, or its own recipe's).
A stage whose run folder already holds a final model (config.json) is skipped, and an
interrupted stage resumes from its last checkpoint, so re-running a pipeline continues it.
`medmo train pipeline.yaml --prepare` builds every stage's training set ahead of time.

On GPUs and under `accelerate launch` (`isolate`, by default) each stage runs in a fresh
`python -m medmo train STAGE` process: three DeepSpeed SFT stages and a vLLM-colocated GRPO
stage in one process would share one DeepSpeed engine's leftovers, one process group and
whatever GPU memory vLLM and the allocator keep. A failed stage stops the pipeline with its
exit code, and the same command resumes it. On one CPU process (the demo, the tests,
`--rehearse`) stages run in this process, which saves the start-up of each.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from medmo.config import make_run_dir

logger = logging.getLogger(__name__)


@dataclass
class PipelineConfig:
    """A chain of stage recipes. Every field is a recipe key (recipes/*/pipeline.yaml)."""

    stages: list[str]  # stage recipe files, in order (paths relative to the working directory)
    trainer: str = "pipeline"  # the recipe kind; must be "pipeline"
    model: str | None = None  # starting checkpoint of the first stage (None: the first recipe's own)
    output_dir: str = "runs/pipeline"  # stage runs go to output_dir/<stage recipe name>/
    overrides: list[str] = field(default_factory=list)  # key=value applied to every stage
    stage_overrides: dict[str, list[str]] = field(default_factory=dict)  # {stage recipe name: [key=value, ...]}
    isolate: bool | None = None  # each stage in a fresh process; None: when distributed (WORLD_SIZE > 1) or on CUDA

    def __post_init__(self):
        if self.trainer != "pipeline":
            raise ValueError(f"trainer must be 'pipeline' for a PipelineConfig, got {self.trainer!r}")
        if not self.stages:
            raise ValueError("stages: list at least one stage recipe")
        names = [Path(s).stem for s in self.stages]
        for name in self.stage_overrides:
            if name not in names:
                raise ValueError(f"stage_overrides names {name!r}, which is not a stage; stages: {', '.join(names)}")


def stage_configs(cfg: PipelineConfig) -> list[tuple[str, object]]:
    """Load every stage recipe (all errors before any training): [(kind, config)].

    `model` is chained at run time; here each stage gets a placeholder equal to the
    previous stage's run folder, so the configs saved with each run are the real ones.
    """
    from medmo.train.recipes import load_recipe, recipe_kind, stage_runners, trainer_key

    stages = stage_runners()
    out = []
    previous = cfg.model
    for path in cfg.stages:
        name = Path(path).stem
        if trainer_key(path) == "pipeline":
            raise ValueError(f"{path}: a pipeline cannot contain another pipeline")
        kind = recipe_kind(path, stages)
        extra = {"output_dir": str(Path(cfg.output_dir) / name)}
        if previous is not None:
            extra["model"] = previous
        stage_cfg = load_recipe(path, stages, [*cfg.overrides, *cfg.stage_overrides.get(name, [])], **extra)
        out.append((kind, stage_cfg))
        previous = stage_cfg.output_dir
    return out


def isolated(cfg: PipelineConfig) -> bool:
    """Whether stages run in fresh processes (see the module docstring)."""
    if cfg.isolate is not None:
        return cfg.isolate
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or torch.cuda.is_available()


def run_isolated(path: str, cfg: PipelineConfig, stage_cfg) -> int:
    """`python -m medmo train STAGE key=value ...` in a child that inherits this process's
    environment (accelerate's RANK, WORLD_SIZE, MASTER_ADDR/PORT, DeepSpeed/FSDP settings), so
    under `accelerate launch` each rank's child joins a new process group for this stage.
    Returns the child's pid."""
    name = Path(path).stem
    overrides = [*cfg.overrides, *cfg.stage_overrides.get(name, []), f"output_dir={stage_cfg.output_dir}",
                 f"model={stage_cfg.model}"]
    child = subprocess.Popen([sys.executable, "-m", "medmo", "train", path, *overrides])
    rc = child.wait()
    if rc != 0:
        raise ValueError(f"stage {name} exited with code {rc} (its log is above); run the same command again to "
                           f"resume it from its last checkpoint in {stage_cfg.output_dir}")
    return child.pid


def run(cfg: PipelineConfig) -> Path:
    """Run the stages in order; returns output_dir, which lists them in stages.json."""
    from medmo.train.recipes import stage_runners

    stages = stage_configs(cfg)
    root = make_run_dir(cfg.output_dir, cfg)
    fresh = isolated(cfg)
    done = []
    for path, (kind, stage_cfg) in zip(cfg.stages, stages):
        run_dir = Path(stage_cfg.output_dir)
        pid = None
        if (run_dir / "config.json").exists():
            logger.info("stage %s already finished (%s): skipped", run_dir.name, run_dir)
        elif fresh:
            logger.info("stage %s (%s) from %s, in a fresh process", run_dir.name, kind, stage_cfg.model)
            pid = run_isolated(path, cfg, stage_cfg)
        else:
            logger.info("stage %s (%s) from %s", run_dir.name, kind, stage_cfg.model)
            run_dir = stage_runners().get(kind).run(stage_cfg)
            pid = os.getpid()
        done.append({"stage": run_dir.name, "kind": kind, "model": stage_cfg.model, "run_dir": str(run_dir),
                     "process": "fresh" if fresh else "same", "pid": pid})
        (root / "stages.json").write_text(json.dumps(done, indent=2))
    return root


def prepare(cfg: PipelineConfig, processor_from: str | None = None) -> list[dict]:
    """Every stage's training set (and packing plan) built ahead of training; the processor
    comes from the first stage's starting model, as stages do not change it."""
    from medmo.train.recipes import stage_runners

    stages = stage_configs(cfg)
    first = processor_from or stages[0][1].model
    return [stage_runners().get(kind).prepare(stage_cfg, first) for kind, stage_cfg in stages]
