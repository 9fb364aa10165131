"""Recipe files -> validated configs, and the single-stage trainers a pipeline chains.

A recipe's `trainer:` key picks a `Runner`: its config dataclass, its training run and
its model-free `prepare`. `STAGES` holds the single-stage trainers, sft (stages 1-3) and
grpo (stage 4); medmo.train adds `pipeline` on top of them. The split is what lets a
pipeline run its stages without importing the package that registers the pipeline itself
(no import circle: train/__init__ -> pipeline -> recipes -> sft, grpo).
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


# kind -> Runner for one stage; filled lazily so `import medmo.train` stays light.
STAGES: Registry[Runner] = Registry("trainer")


def stage_runners() -> Registry[Runner]:
    """STAGES, registered on first use (importing sft and grpo pulls in TRL)."""
    if not len(STAGES):
        from medmo.train import grpo, sft

        STAGES.add("sft", Runner(sft.SFTConfig, sft.run, sft.prepare))
        STAGES.add("grpo", Runner(grpo.GRPOConfig, grpo.run, grpo.prepare))
    return STAGES


def trainer_key(path: str | Path):
    """The raw `trainer:` value of a recipe file (None when it has none)."""
    from medmo.config import find_recipe

    path = find_recipe(path)
    if not path.exists():
        raise FileNotFoundError(f"recipe {path} does not exist (see recipes/tiny/ for examples)")
    data = yaml.safe_load(path.read_text()) or {}
    return data.get("trainer") if isinstance(data, dict) else None


def recipe_kind(path: str | Path, runners: Registry[Runner]) -> str:
    """The `trainer:` key of a recipe file, one of `runners`."""
    kind = trainer_key(path)
    if kind is None:
        raise ValueError(f"recipe {path} has no `trainer:` key; add one of: {', '.join(runners.names())}")
    runners.get(kind)  # unknown kind -> "did you mean"
    return kind


def load_recipe(path: str | Path, runners: Registry[Runner], overrides: list[str] | tuple[str, ...] = (), **extra):
    """A recipe file -> its validated config; the paths it names (a pipeline's stages, a stage's
    mixture) are found from the working directory, else from the folders above the recipe."""
    from medmo.config import load_config, relative_to_recipe

    cfg = load_config(runners.get(recipe_kind(path, runners)).config, path, overrides, **extra)
    if hasattr(cfg, "stages"):
        cfg.stages = [relative_to_recipe(s, path) for s in cfg.stages]
    if getattr(cfg, "mixture", None):
        cfg.mixture = relative_to_recipe(cfg.mixture, path)
    return cfg
