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


def run_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Load, validate and run a recipe; returns its run folder."""
    from medmo.config import load_config

    runner = RUNNERS.get(recipe_kind(path))
    return runner.run(load_config(runner.config, path, overrides))


def prepare_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict | list[dict]:
    """Build a recipe's training sets (and packing plans) without loading a model; their summary."""
    from medmo.config import load_config

    runner = RUNNERS.get(recipe_kind(path))
    return runner.prepare(load_config(runner.config, path, overrides))
