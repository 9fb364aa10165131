"""Training: stages 1-3 (sft), stage 4 (grpo) and chains of stages (pipeline), on TRL.

`run_recipe(path, overrides)` is what `medmo train RECIPE.yaml key=value ...` calls: the
recipe's `trainer:` key (sft, grpo or pipeline) picks the config dataclass and runner;
the recipe is fully validated before any model is loaded. `prepare_recipe` (`--prepare`)
builds the training sets and packing plans into the run folders, model-free.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

import yaml

from medmo.registry import Registry


class Runner(NamedTuple):
    config: type  # the recipe's dataclass
    run: Callable[[Any], Path]  # train; returns the run folder
    prepare: Callable[..., Any]  # build the training sets (and packing plans) only; returns their summary


# kind -> Runner; filled lazily so `import medmo.train` stays light.
RUNNERS: Registry[Runner] = Registry("trainer")


def _register() -> None:
    if len(RUNNERS):
        return
    from medmo.train import grpo, pipeline, sft

    RUNNERS.add("sft", Runner(sft.SFTConfig, sft.run, sft.prepare))
    RUNNERS.add("grpo", Runner(grpo.GRPOConfig, grpo.run, grpo.prepare))
    RUNNERS.add("pipeline", Runner(pipeline.PipelineConfig, pipeline.run, pipeline.prepare))


def recipe_kind(path: str | Path) -> str:
    """The `trainer:` key of a recipe file (sft, grpo or pipeline)."""
    _register()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recipe {path} does not exist (see recipes/tiny/ for examples)")
    data = yaml.safe_load(path.read_text()) or {}
    kind = data.get("trainer") if isinstance(data, dict) else None
    if kind is None:
        raise ValueError(f"recipe {path} has no `trainer:` key; add one of: {', '.join(RUNNERS.names())}")
    RUNNERS.get(kind)  # unknown kind -> "did you mean"
    return kind


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = (), **extra):
    """A recipe file -> its validated config; the paths it names (a pipeline's stages, a stage's
    mixture) are found from the working directory, else from the folders above the recipe."""
    from medmo.config import load_config, relative_to_recipe

    cfg = load_config(RUNNERS.get(recipe_kind(path)).config, path, overrides, **extra)
    if hasattr(cfg, "stages"):
        cfg.stages = [relative_to_recipe(s, path) for s in cfg.stages]
    if getattr(cfg, "mixture", None):
        cfg.mixture = relative_to_recipe(cfg.mixture, path)
    return cfg


def run_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Load, validate and run a recipe; returns its run folder."""
    return RUNNERS.get(recipe_kind(path)).run(load_recipe(path, overrides))


def prepare_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict | list[dict]:
    """Build a recipe's training sets (and packing plans) without loading a model; their summary."""
    return RUNNERS.get(recipe_kind(path)).prepare(load_recipe(path, overrides))
