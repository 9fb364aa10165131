"""Training: stages 1-3 (sft), stage 4 (grpo) and chains of stages (pipeline), on TRL.

`run_recipe(path, overrides)` is what `medmo train RECIPE.yaml key=value ...` calls: the
recipe's `trainer:` key (sft, grpo or pipeline) picks the config dataclass and runner;
the recipe is fully validated before any model is loaded. `prepare_recipe` (`--prepare`)
builds the training sets and packing plans into the run folders, model-free.
"""
from __future__ import annotations

from pathlib import Path

from medmo.registry import Registry
from medmo.train import recipes
from medmo.train.recipes import Runner

# kind -> Runner: the single stages (recipes.STAGES) and the pipeline that chains them; filled
# lazily so `import medmo.train` stays light.
RUNNERS: Registry[Runner] = Registry("trainer")


def _register() -> None:
    if len(RUNNERS):
        return
    from medmo.train import pipeline

    stages = recipes.stage_runners()
    for kind in stages:
        RUNNERS.add(kind, stages.get(kind))
    RUNNERS.add("pipeline", Runner(pipeline.PipelineConfig, pipeline.run, pipeline.prepare))


def recipe_kind(path: str | Path) -> str:
    """The `trainer:` key of a recipe file (sft, grpo or pipeline)."""
    _register()
    return recipes.recipe_kind(path, RUNNERS)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = (), **extra):
    """A recipe file (any trainer) -> its validated config (recipes.load_recipe)."""
    _register()
    return recipes.load_recipe(path, RUNNERS, overrides, **extra)


def run_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Load, validate and run a recipe; returns its run folder."""
    return RUNNERS.get(recipe_kind(path)).run(load_recipe(path, overrides))


def prepare_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict | list[dict]:
    """Build a recipe's training sets (and packing plans) without loading a model; their summary."""
    return RUNNERS.get(recipe_kind(path)).prepare(load_recipe(path, overrides))
