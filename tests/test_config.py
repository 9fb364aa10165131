"""Recipe loading: typed fields, overrides, unknown keys, run folders."""
from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from medmo.config import load_config, make_run_dir, parse_override
from medmo.registry import Registry


@dataclass
class Inner:
    lr: float = 1e-3
    layers: list[str] = field(default_factory=list)


@dataclass
class Outer:
    name: str = "x"
    steps: int = 10
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self):
        if self.steps <= 0:
            raise ValueError(f"steps must be > 0, got {self.steps}")


OVERRIDES = [
    ("steps=5", ("steps", 5)),  # YAML int
    ("inner.lr=1e-4", ("inner.lr", 1e-4)),  # dotted key, float
    ("name=", ("name", "")),  # empty string
    ("inner.layers=[a, b]", ("inner.layers", ["a", "b"])),  # list
]


@pytest.mark.parametrize("text,want", OVERRIDES)
def test_parse_override(text, want):
    assert parse_override(text) == want


def test_recipe_plus_overrides(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: demo\ninner:\n  lr: 0.01\n")
    cfg = load_config(Outer, p, ["steps=3", "inner.layers=[vision]"])
    assert cfg == Outer(name="demo", steps=3, inner=Inner(lr=0.01, layers=["vision"]))


def test_unknown_keys_are_all_reported_with_suggestions(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("stpes: 3\ninner:\n  lrr: 1\n")
    with pytest.raises(ValueError) as e:
        load_config(Outer, p)
    msg = str(e.value)
    assert "'stpes'" in msg and "Did you mean 'steps'" in msg
    assert "'lrr'" in msg and "'lr'" in msg


def test_validation_error_names_the_recipe(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("steps: 0\n")
    with pytest.raises(ValueError, match="bad.yaml.*steps must be > 0"):
        load_config(Outer, p)


def test_missing_recipe_and_bad_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipes/"):
        load_config(Outer, tmp_path / "nope.yaml")
    (tmp_path / "x.yaml").write_text("- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(Outer, tmp_path / "x.yaml")


def test_run_dir_records_resolved_config(tmp_path):
    out = make_run_dir(tmp_path / "run", Outer(steps=7))
    doc = yaml.safe_load((out / "config.yaml").read_text())
    assert doc["config"]["steps"] == 7 and doc["config"]["inner"]["lr"] == 1e-3
    assert doc["config_class"] == "Outer" and "medmo_version" in doc


def test_registry_did_you_mean():
    reg = Registry("benchmark")
    reg.add("vqa_rad", 1)
    reg.add("slake", 2)
    with pytest.raises(ValueError, match="Unknown benchmark 'vqarad'. Did you mean 'vqa_rad'"):
        reg.get("vqarad")
    with pytest.raises(ValueError, match="twice"):
        reg.add("slake", 3)


def test_scalar_types_are_checked_and_yaml11_floats_read(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("steps: ten\ninner:\n  lr: 1e-4\n")
    with pytest.raises(ValueError, match="steps: expected int, got 'ten'"):
        load_config(Outer, p)
    p.write_text("steps: 2\ninner:\n  lr: 1e-4\n")
    assert load_config(Outer, p).inner.lr == 1e-4


@dataclass
class Choices:
    fmt: Literal["jsonl", "parquet"] = "jsonl"
    mode: Literal["strict", "medevalkit"] | None = None


LITERALS = [  # (recipe text, error or None)
    ("fmt: parquet\nmode: strict\n", None),  # allowed values
    ("mode: null\n", None),  # an optional Literal takes null
    ("fmt: csv\n", "fmt: expected one of jsonl, parquet, got 'csv'"),
    ("mode: lenient\n", "mode: expected one of strict, medevalkit, null, got 'lenient'"),
]


@pytest.mark.parametrize("text,error", LITERALS)
def test_literal_fields_take_one_of_their_values(tmp_path, text, error):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    if error is None:
        load_config(Choices, p)
    else:
        with pytest.raises(ValueError, match=error):
            load_config(Choices, p)
