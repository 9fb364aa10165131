"""Recipes load into their dataclasses; a pipeline chains stages and skips finished ones."""
import json
from pathlib import Path

import pytest
import yaml

from medmo.config import load_config
from medmo.data.synthetic import write_cell_set
from medmo.train import RUNNERS, recipe_kind, run_recipe
from medmo.train.pipeline import PipelineConfig, run, stage_configs

TINY = Path(__file__).resolve().parents[1] / "recipes" / "tiny"


@pytest.mark.parametrize("recipe", sorted(TINY.glob("*.yaml")), ids=lambda p: p.name)
def test_every_tiny_recipe_loads(recipe):
    kind = recipe_kind(recipe)
    cfg = load_config(RUNNERS.get(kind).config, recipe)
    assert cfg.trainer == kind
    header = [line for line in recipe.read_text().splitlines() if line.startswith("#")]
    assert any("medmo train" in line and "=" in line for line in header)  # launch command + an override example


def test_the_tiny_pipeline_chains_models():
    cfg = load_config(PipelineConfig, TINY / "pipeline.yaml", model="base", output_dir="out")
    stages = stage_configs(cfg)
    assert [k for k, _ in stages] == ["sft", "sft", "sft", "grpo"]
    assert [c.model for _, c in stages] == ["base", "out/stage1_sft", "out/stage2_sft", "out/stage3_sft"]


def test_recipe_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\ndata: [x.jsonl]\n")
    with pytest.raises(ValueError, match="no `trainer:` key"):
        run_recipe(bad)
    bad.write_text("trainer: stf\nmodel: m\ndata: [x.jsonl]\n")
    with pytest.raises(ValueError, match="Did you mean 'sft'"):
        run_recipe(bad)
    with pytest.raises(ValueError, match="stage_overrides names 'stage9'"):
        PipelineConfig(stages=["a/stage1.yaml"], stage_overrides={"stage9": ["max_steps=1"]})


def _two_stage_recipe(tmp_path, tiny_dir, data, sft_overrides=()) -> Path:
    """The tiny stage 1 (SFT) then stage 4 (GRPO), one step each, on `data`."""
    recipe = tmp_path / "pipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "trainer": "pipeline", "model": str(tiny_dir), "output_dir": str(tmp_path / "runs"),
        "stages": [str(TINY / "stage1_sft.yaml"), str(TINY / "stage4_grpo.yaml")],
        "overrides": [f"data=[{data}]", "max_steps=1", "save_steps=1", "per_device_train_batch_size=2",
                      "max_pixels=4096", "logging_steps=1"],
        "stage_overrides": {"stage1_sft": list(sft_overrides),
                            "stage4_grpo": ["num_generations=2", "max_completion_length=6"]},
    }))
    return recipe


def test_pipeline_runs_sft_then_grpo_and_resumes(tiny_dir, tmp_path):
    recipe = _two_stage_recipe(tmp_path, tiny_dir, write_cell_set(tmp_path / "data", "train", 4, image_size=64))
    root = run_recipe(recipe)
    stages = json.loads((root / "stages.json").read_text())
    assert [s["stage"] for s in stages] == ["stage1_sft", "stage4_grpo"]
    assert stages[1]["model"] == str(tmp_path / "runs" / "stage1_sft")  # GRPO started from the SFT output
    saved = yaml.safe_load((tmp_path / "runs" / "stage4_grpo" / "config.yaml").read_text())
    assert saved["config"]["model"] == stages[1]["model"] and saved["config"]["max_steps"] == 1
    mtime = (tmp_path / "runs" / "stage1_sft" / "model.safetensors").stat().st_mtime
    run(load_config(PipelineConfig, recipe))  # both stages finished: nothing is retrained
    assert (tmp_path / "runs" / "stage1_sft" / "model.safetensors").stat().st_mtime == mtime


def test_prepare_builds_sets_and_plans_that_training_reuses(tiny_dir, tmp_path, capsys):
    """`medmo train pipeline.yaml --prepare`: no model loaded; each stage's set (and the SFT
    stage's packing plan) is in its run folder, and training then uses them as they are."""
    from medmo.cli import main

    data = write_cell_set(tmp_path / "data", "train", 6, n_vqa=2, image_size=64)
    recipe = _two_stage_recipe(tmp_path, tiny_dir, data, ["packing=true", "max_length=256"])
    assert main(["train", str(recipe), "--prepare", "output_dir=" + str(tmp_path / "runs")]) == 0  # option, then key=value
    sft, grpo = json.loads(capsys.readouterr().out)
    assert (sft["stage"], sft["samples"], sft["skipped"]) == ("stage1_sft", 8, {})
    assert sft["packing"]["samples"] == 8 and sft["packing"]["rows"] < 8 and sft["packing"]["too_long"] == 0
    assert (grpo["stage"], grpo["prompts"]) == ("stage4_grpo", 8)
    sft_dir = tmp_path / "runs" / "stage1_sft"
    assert not (sft_dir / "config.json").exists()  # nothing trained, no model written
    made = {p: p.stat().st_mtime_ns for p in [sft_dir / "lengths.json", *sft_dir.glob("dataset/*")]}

    run_recipe(recipe)
    assert {p: p.stat().st_mtime_ns for p in made} == made  # reused, not rebuilt
    assert (sft_dir / "config.json").exists() and (tmp_path / "runs" / "stage4_grpo" / "config.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "r.yaml", "--prepare", "--bogus"], "unrecognized arguments: --bogus"),  # options stay checked
    (["train", "r.yaml", "--prepare", "stray"], "unrecognized arguments: stray"),      # not key=value
])
def test_cli_rejects_what_is_neither_option_nor_override(argv, message, capsys):
    from medmo.cli import main

    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("isolate,env,cuda,want", [
    (None, {}, False, False),                  # one CPU process: stages share it (demo, tests, --rehearse)
    (None, {"WORLD_SIZE": "2"}, False, True),  # accelerate launch: a fresh process group per stage
    (None, {}, True, True),                    # GPUs: DeepSpeed / vLLM state never outlives its stage
    (False, {"WORLD_SIZE": "2"}, True, False),  # the recipe key wins
    (True, {}, False, True),
])
def test_when_stages_run_in_fresh_processes(isolate, env, cuda, want, monkeypatch):
    import torch

    from medmo.train.pipeline import isolated

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert isolated(PipelineConfig(stages=["a/stage1.yaml"], isolate=isolate)) is want


@pytest.mark.slow
def test_isolated_stages_run_in_their_own_processes_and_a_failure_resumes(tiny_dir, tmp_path):
    import os

    data = write_cell_set(tmp_path / "data", "train", 4, image_size=64)
    recipe = _two_stage_recipe(tmp_path, tiny_dir, data)
    cfg = yaml.safe_load(recipe.read_text())
    cfg["isolate"] = True
    cfg["stage_overrides"]["stage4_grpo"].append("data=[/no/such/records.jsonl]")  # stage 2 fails
    recipe.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="stage stage4_grpo exited with code 2.*run the same command again"):
        run_recipe(recipe)
    assert (tmp_path / "runs" / "stage1_sft" / "config.json").exists()  # the finished stage is kept
    cfg["stage_overrides"]["stage4_grpo"].pop()
    recipe.write_text(yaml.safe_dump(cfg))
    root = run_recipe(recipe)
    stages = json.loads((root / "stages.json").read_text())
    assert [(s["stage"], s["process"]) for s in stages] == [("stage1_sft", "fresh"), ("stage4_grpo", "fresh")]
    assert stages[0]["pid"] is None  # finished on the first run: skipped, not retrained
    assert stages[1]["pid"] not in (None, os.getpid())
    assert (tmp_path / "runs" / "stage4_grpo" / "config.json").exists()
