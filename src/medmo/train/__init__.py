"""Training: stages 1-3 (sft), stage 4 (grpo) and chains of stages (pipeline), on TRL.

`run_recipe(path, overrides)` is what `medmo train RECIPE.yaml key=value ...` calls: the
recipe's `trainer:` key (sft, grpo or pipeline) picks the config dataclass and runner;
the recipe is fully validated before any model is loaded.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from medmo.registry import Registry

# kind -> (config dataclass, run function); filled lazily so `import medmo.train` stays light.
RUNNERS: Registry[tuple] = Registry("trainer")


def _register() -> None:
    if len(RUNNERS):
        return
    from medmo.train import grpo, pipeline, sft

    RUNNERS.add("sft", (sft.SFTConfig, sft.run))
    RUNNERS.add("grpo", (grpo.GRPOConfig, grpo.run))
    RUNNERS.add("pipeline", (pipeline.PipelineConfig, pipeline.run))


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

    kind = recipe_kind(path)
    config_cls, runner = RUNNERS.get(kind)
    return runner(load_config(config_cls, path, overrides))
