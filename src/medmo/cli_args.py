"""Command-line options generated from a config dataclass: the dataclass is the only schema.

Each field becomes `--snake-case` with the field's `metadata["help"]`, its default and, for a
`Literal[...]` type, its choices; a new field is one edit, in the dataclass:

    @dataclass
    class StatsConfig:
        dir: str = field(metadata={"help": "folder of record shards"})
        out: str | None = field(default=None, metadata={"help": "where to write (default: DIR/stats)"})

    add_config_arguments(parser, StatsConfig, positional=("dir",))
    cfg = config_from_args(StatsConfig, parser.parse_args())

Types: bool -> `--flag` (default False) or `--flag/--no-flag` (default True); list and tuple ->
one or more values, repeatable, commas also separate (`--benchmark a,b --benchmark c`); a
nested dataclass (EvalConfig.judge) -> `--judge-model`, ... for each of its fields. Fields of
other types (lists of mappings) are recipe-only (`key.sub=value` overrides still reach them).
`metadata["aliases"]` adds older spellings (`--slice` for `slice_index`).

Only the options the user typed reach `load_config`, so a recipe's values are never replaced
by a default of the parser (`medmo eval --suite vqa` keeps the suite's `max_pixels`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from typing import Any, Literal

from medmo.config import load_config

GIVEN = "_given"  # namespace attribute: the dests the user typed


class _Given(argparse.Action):
    """Stores like argparse's store/store_true/extend actions and records that the user gave the value."""

    def __init__(self, option_strings, dest, is_list=False, negative=None, **kwargs):
        self.is_list, self.negative = is_list, negative
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(namespace, GIVEN, set())
        if self.nargs == 0:  # a bool flag; its --no-x spelling stores False
            values = option_string != self.negative
        elif self.is_list:
            values = [v for item in values for v in (item.split(",") if isinstance(item, str) else [item]) if v != ""]
            if self.dest in given:
                values = getattr(namespace, self.dest) + values
        setattr(namespace, self.dest, values)
        setattr(namespace, GIVEN, given | {self.dest})


def _unwrap(hint):
    """`X | None` -> X; any other type as it is."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def show_default(value) -> str:
    """How a default is written in --help: `(default: 1e-05)`, lists as `a,b`."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _option_kwargs(hint) -> dict | None:
    """argparse keywords for a field type; None when the type has no command-line form."""
    hint = _unwrap(hint)
    origin = typing.get_origin(hint)
    if hint is bool:
        return {"nargs": 0}
    if hint in (int, float, str):
        return {"type": hint}
    if origin is Literal:
        choices = typing.get_args(hint)
        return {"type": type(choices[0]), "choices": choices}
    if origin in (list, tuple):
        item = typing.get_args(hint)[0]
        if item in (int, float, str):
            return {"nargs": "+", "type": item, "is_list": True,
                    "metavar": item.__name__.upper() if item is not str else "VALUE"}
    return None


def add_config_arguments(parser: argparse.ArgumentParser, cls, *, positional: tuple[str, ...] = (),
                         required: tuple[str, ...] = (), skip: tuple[str, ...] = (),
                         only: tuple[str, ...] | None = None, require_missing: bool = True,
                         _prefix: str = "") -> None:
    """Add one option per field of `cls` (see the module docstring). `positional` fields are
    arguments without a flag; a field without a default is a required option unless
    `require_missing` is False (a recipe may give it); `required` options must be given even
    though the field has a default; `skip`/`only` leave fields to hand-written options or to overrides."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip or (only is not None and f.name not in only):
            continue
        hint, default = hints[f.name], _default(f)
        dest = _prefix + f.name
        if dataclasses.is_dataclass(hint):
            add_config_arguments(parser, hint, _prefix=dest + ".")
            continue
        kwargs = _option_kwargs(hint)
        if kwargs is None:
            continue
        help_text = f.metadata.get("help", "").replace("%", "%%")
        if default not in (dataclasses.MISSING, None, "", [], ()) and hint is not bool:
            help_text += f" (default: {show_default(default)})"
        if f.name in positional:
            parser.add_argument(dest, action=_Given, help=help_text, **kwargs)
            continue
        flag = "--" + dest.replace(".", "-").replace("_", "-")
        flags = [flag, *f.metadata.get("aliases", ())]
        if hint is bool and default is True:
            kwargs["negative"] = "--no-" + flag[2:]
            flags.insert(1, kwargs["negative"])
            help_text += " (default: on; --no-" + flag[2:] + " turns it off)"
        kwargs["default"] = None if default is dataclasses.MISSING else default
        if "choices" not in kwargs:  # choices are shown as {a,b,c}
            kwargs.setdefault("metavar", f.name.upper())
        if (default is dataclasses.MISSING and require_missing) or f.name in required:
            kwargs["required"] = True
        parser.add_argument(*flags, dest=dest, action=_Given, help=help_text, **kwargs)


def given_values(cls, args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The fields of `cls` the user typed: top-level values, and `key.sub=value` overrides for nested ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    given, nested = {}, []
    for dest in sorted(getattr(args, GIVEN, set())):
        top = dest.split(".")[0]
        if top not in names:
            continue
        value = getattr(args, dest)
        if "." in dest:
            nested.append(f"{dest}={json.dumps(value)}")
        else:
            given[dest] = value
    return given, nested


def config_from_args(cls, args: argparse.Namespace, recipe=None, overrides=(), **extra):
    """`load_config(cls, recipe, overrides, **what the user typed)`; typed options win over `overrides`."""
    given, nested = given_values(cls, args)
    return load_config(cls, recipe, [*overrides, *nested], **{**given, **extra})
