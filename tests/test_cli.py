"""The `medmo` command's options are generated from the config dataclasses (medmo.cli_args)."""
import ast
import dataclasses
import typing
from pathlib import Path

import pytest

from medmo.cli import build_parser, main
from medmo.cli_args import config_from_args, show_default
from medmo.data.cell import CellConfig
from medmo.data.convert import ConvertConfig
from medmo.data.mixture import MixtureConfig
from medmo.data.overlap import OverlapConfig
from medmo.data.retrieval import RetrievalConfig
from medmo.data.stats import StatsConfig
from medmo.demo import DemoConfig
from medmo.eval.offline import ScoreConfig
from medmo.eval.runner import EvalConfig
from medmo.infer import InferConfig
from medmo.model.tiny import TinyConfig
from medmo.rehearse import RehearseConfig
from medmo.serve.api import ServeConfig
from medmo.train.export import ExportConfig

COMMANDS = [  # (command, its config, fields left to hand-written options or recipes, positional fields)
    (["tiny"], TinyConfig, (), ()),
    (["demo"], DemoConfig, (), ()),
    (["export"], ExportConfig, (), ("run_dir",)),
    (["data", "convert"], ConvertConfig, (), ("source",)),
    (["data", "stats"], StatsConfig, (), ("dir",)),
    (["data", "mix"], MixtureConfig, ("sources",), ()),  # a list of mappings: recipe only
    (["data", "overlap"], OverlapConfig, (), ("train", "bench")),
    (["data", "cell"], CellConfig, (), ()),
    (["data", "retrieval"], RetrievalConfig, (), ("src",)),
    (["infer"], InferConfig, (), ()),
    (["serve"], ServeConfig, (), ()),
    (["eval"], EvalConfig, ("suite",), ()),  # --suite names the suite recipe (hand-written)
    (["score"], ScoreConfig, (), ()),
    # train: only the rehearsal's folders are options; its other fields are key=value overrides
    (["train"], RehearseConfig, tuple(f.name for f in dataclasses.fields(RehearseConfig)
                                      if f.name not in ("data_root", "out")), ()),
]


def _help(capsys, command: list[str]) -> str:
    with pytest.MonkeyPatch.context() as mp, pytest.raises(SystemExit):
        mp.setenv("COLUMNS", "400")  # no wrapping (it may break "comma-separated" at its hyphen)
        main([*command, "--help"])
    return capsys.readouterr().out


def _entries(text: str) -> dict[str, str]:
    """Help text -> {first word of each option or argument line: its whole entry, whitespace collapsed}."""
    entries, key = {}, None
    for line in text.splitlines():
        if line.startswith("  ") and not line.startswith("   ") and line.strip():
            key = line.split()[0].rstrip(",")
            entries[key] = line
        elif key and line.startswith("    "):
            entries[key] += " " + line
        else:
            key = None
    return {k: " ".join(v.split()) for k, v in entries.items()}


def _fields(cls, prefix=""):
    """(name as a flag stem, field, its default) for every field, nested dataclasses flattened."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _fields(hints[f.name], prefix + f.name + "-")
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        yield prefix + f.name.replace("_", "-"), f, default, hints[f.name]


@pytest.mark.parametrize("command,cls,skip,positional", COMMANDS, ids=lambda c: " ".join(c) if isinstance(c, list) else "")
def test_every_field_is_in_help_with_its_help_and_default(capsys, command, cls, skip, positional):
    entries = _entries(_help(capsys, command))
    for stem, f, default, hint in _fields(cls):
        if f.name in skip:
            continue
        assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no metadata help"
        key = f.name if f.name in positional else "--" + stem
        assert key in entries, f"{key} ({cls.__name__}.{f.name}) missing from `medmo {' '.join(command)} --help`"
        entry = entries[key]
        assert " ".join(f.metadata["help"].split()) in entry
        if hint is bool:
            assert default is not True or f"--no-{stem}" in entry
        elif default not in (None, "", [], ()):
            assert f"(default: {show_default(default)})" in entry, entry


def _config_help_strings():
    for _, cls, _, _ in COMMANDS:
        for _, f, _, _ in _fields(cls):
            if f.metadata.get("help"):
                yield f.metadata["help"]


def test_cli_holds_no_field_defaults_or_help():
    source = (Path(__file__).parents[1] / "src" / "medmo" / "cli.py").read_text()
    strings = {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not strings & set(_config_help_strings())
    # every option of a command whose name is one of its config's fields is the generated one
    parser = build_parser()
    subs = {a.dest: a for a in parser._actions if a.choices and isinstance(a.choices, dict)}["command"].choices
    for command, cls, skip, _ in COMMANDS:
        p = subs[command[0]]
        if len(command) > 1:
            p = next(a for a in p._actions if isinstance(a.choices, dict)).choices[command[1]]
        names = {stem.replace("-", "_") for stem, *_ in _fields(cls)} | {f.name for f in dataclasses.fields(cls)}
        for action in p._actions:
            field_name = action.dest.replace(".", "_")
            if field_name in names and field_name not in skip:
                assert type(action).__name__ == "_Given", f"medmo {' '.join(command)}: {action.dest} is hand-written"


def _parse(*argv):
    return build_parser().parse_args(list(argv))


def test_recipe_values_are_kept_unless_the_user_types_an_option(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("suite: s\nbenchmarks: [vqa_rad]\nmax_pixels: 123\nbatch_size: 4\njudge:\n  timeout: 9\n")
    args = _parse("eval", "--model", "m", "--batch-size", "2", "--judge-model", "J", "--no-plots")
    cfg = config_from_args(EvalConfig, args, suite)
    assert cfg.max_pixels == 123 and cfg.out == "runs/eval"  # recipe kept, dataclass default otherwise
    assert cfg.batch_size == 2 and cfg.plots is False  # typed options win
    assert cfg.judge.model == "J" and cfg.judge.timeout == 9  # a nested option leaves the recipe's siblings


CASES = [  # (argv, field, expected value)
    (["eval", "--model", "m", "--benchmark", "a,b", "--benchmark", "c"], "benchmarks", ["a", "b", "c"]),  # lists
    (["eval", "--model", "m", "--benchmark", "a", "--skip-missing"], "skip_missing", True),  # default-False bool
    (["data", "overlap", "t", "b", "--drop-on", "text,question"], "drop_on", ["text", "question"]),
    (["infer", "--model", "m", "--image", "i", "--slice", "3"], "slice_index", 3),  # an alias
    (["infer", "--model", "m", "--image", "i"], "slice_index", None),
    (["tiny", "--out", "o", "--deepstack", "1", "2"], "deepstack", [1, 2]),
]


@pytest.mark.parametrize("argv,name,want", CASES)
def test_option_types(argv, name, want):
    assert getattr(_parse(*argv), name) == want


def test_literal_fields_are_choices(capsys):
    with pytest.raises(SystemExit):
        _parse("infer", "--model", "m", "--image", "i", "--task", "segment")
    assert "invalid choice: 'segment'" in capsys.readouterr().err
    assert _parse("export", "run", "--out", "o", "--dtype", "bfloat16").dtype == "bfloat16"


def test_required_fields_are_required(capsys):
    with pytest.raises(SystemExit):
        _parse("score", "--out", "o")
    assert "--predictions" in capsys.readouterr().err
