"""Load a YAML recipe into its typed dataclass; `key.sub=value` overrides; run folders.

A recipe's keys are exactly the dataclass's fields. Unknown keys are errors that list the
valid ones (and suggest the closest); every problem in a recipe is collected and reported
together, before any model is loaded. Nested dataclass fields take nested mappings.
Overrides are parsed as YAML scalars, so `lr=1e-4`, `lora=true` and `stages=[a,b]` work.

`make_run_dir` creates runs/<name>/ and writes config.yaml: the resolved config plus the
package version and git sha, so a run folder says exactly what produced it.
"""
from __future__ import annotations

import dataclasses
import subprocess
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from medmo.registry import unknown_name_message

T = TypeVar("T")


def shipped_recipes() -> Path:
    """The recipes/ folder that ships inside the package (a checkout's top-level recipes/ is the
    same folder: src/medmo/recipes links to it), found wherever medmo is installed."""
    from importlib.resources import files

    return Path(str(files("medmo") / "recipes"))


def find_recipe(path: str | Path) -> Path:
    """`path` as given when it exists; else a `recipes/...` path from the shipped recipes, so
    `medmo train recipes/tiny/stage1_sft.yaml` works from any directory."""
    path = Path(path)
    if path.exists() or path.is_absolute() or not path.parts or path.parts[0] != "recipes":
        return path
    shipped = shipped_recipes().joinpath(*path.parts[1:])
    return shipped if shipped.exists() else path


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), **extra) -> T:
    """Recipe file + `key=value` overrides + keyword overrides -> a validated `cls`."""
    data: dict[str, Any] = {}
    if path is not None:
        path = find_recipe(path)
        if not path.exists():
            raise FileNotFoundError(f"recipe {path} does not exist (see recipes/ for the shipped ones)")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"recipe {path} is not valid YAML: {e}") from e
        if not isinstance(loaded, dict):
            raise ValueError(f"recipe {path} must be a mapping of {cls.__name__} fields, got {type(loaded).__name__}")
        data.update(loaded)
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    data.update(extra)
    return from_dict(cls, data, where=str(path) if path else cls.__name__)


def relative_to_recipe(path: str, recipe: str | Path) -> str:
    """A path written in a recipe (`recipes/data/stage1_mix.yaml`), found from the working
    directory, else from the folders above the recipe file (so recipes run from anywhere)."""
    if Path(path).is_absolute() or Path(path).exists():
        return path
    for folder in find_recipe(recipe).resolve().parents:
        if (folder / path).exists():
            return str(folder / path)
    return path


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key=value (e.g. max_steps=10 or model.lr=1e-4)")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), _yaml11_float(value)


def _yaml11_float(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` (no dot) as a string; a learning rate written that way is a float."""
    if isinstance(value, str):
        try:
            return float(value) if any(c.isdigit() for c in value) and "e" in value.lower() else value
        except ValueError:
            return value
    return value


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        data = data.setdefault(p, {})
        if not isinstance(data, dict):
            raise ValueError(f"override {key!r}: {p!r} is not a nested section")
    data[parts[-1]] = value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    errors: list[str] = []
    obj = _build(cls, data, where or cls.__name__, errors)
    if errors:
        raise ValueError("invalid config:\n  " + "\n  ".join(errors))
    return obj


def _build(cls, data: dict[str, Any], where: str, errors: list[str]):
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            errors.append(f"{where}: " + unknown_name_message(f"key for {cls.__name__}", key, fields))
            continue
        sub = hints.get(key)
        if dataclasses.is_dataclass(sub) and isinstance(value, dict):
            value = _build(sub, value, f"{where}.{key}", errors)
        else:
            value = _check_scalar(sub, _yaml11_float(value), f"{where}.{key}", errors)
        kwargs[key] = value
    if errors:
        return None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        errors.append(f"{where}: {e}")
        return None


def _check_scalar(hint, value: Any, where: str, errors: list[str]) -> Any:
    """Plain scalar fields must hold their type (an int is accepted for a float); a `Literal[...]`
    field (or `Literal[...] | None`) one of its values."""
    choices = _literal_choices(hint)
    if choices is not None:
        if value not in choices:
            shown = ", ".join("null" if c is None else str(c) for c in choices)
            errors.append(f"{where}: expected one of {shown}, got {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, bool, str) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        errors.append(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _literal_choices(hint) -> tuple | None:
    """The values a `Literal[...]` or `Literal[...] | None` type allows; None for other types."""
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
        literals = [m for m in members if typing.get_origin(m) is typing.Literal]
        if len(literals) == 1 and set(members) <= {literals[0], type(None)}:
            return (*typing.get_args(literals[0]), *((None,) if type(None) in members else ()))
    return None


def to_dict(cfg) -> dict[str, Any]:
    def plain(v):
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def cache_dir(*parts: str) -> Path:
    """medmo's cache folder ($MEDMO_CACHE, default ~/.cache/medmo) joined with `parts`."""
    import os

    return Path(os.environ.get("MEDMO_CACHE", Path.home() / ".cache" / "medmo")).joinpath(*parts)


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def make_run_dir(out_dir: str | Path, cfg=None, extra: dict | None = None) -> Path:
    """Create the run folder and write config.yaml (resolved config + version + git sha)."""
    from medmo import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg is not None:
        doc = {"config": to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg,
               "config_class": type(cfg).__name__, "medmo_version": __version__, "git_sha": git_sha()}
        doc.update(extra or {})
        (out / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return out
