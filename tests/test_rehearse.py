"""`medmo train RECIPE --rehearse`: the shipped recipes run on the tiny model on CPU.

The slow tests are the issue's acceptance runs: the 8B and 4B pipelines, as shipped, on
../shared/data, from a folder outside the checkout. The fast ones check the parts: where
releases are found, stand-in images, the CPU caps, and the error when a stage has no data.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from medmo.config import load_config
from medmo.data.schema import write_jsonl
from medmo.rehearse import RehearseConfig, raw_folder, scale_stage, stage_data, stand_in_images
from medmo.train import load_recipe

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def test_releases_are_found_by_converter_name_or_one_suffixed_folder(tmp_path):
    (tmp_path / "vqa_rad").mkdir()
    (tmp_path / "iu_xray_medevalkit").mkdir()
    (tmp_path / "mimic_cxr_a").mkdir()
    (tmp_path / "mimic_cxr_b").mkdir()
    assert raw_folder(tmp_path, "vqa_rad") == tmp_path / "vqa_rad"
    assert raw_folder(tmp_path, "iu_xray") == tmp_path / "iu_xray_medevalkit"
    assert raw_folder(tmp_path, "mimic_cxr") is None  # two candidates: never guess
    assert raw_folder(tmp_path, "slake") is None


def _record(i, image, boxes=None, size=None, source="nih"):
    answer = {"boxes": boxes, "image_size": size} if boxes else {"text": "yes", "closed": True}
    return {"id": f"r{i}", "source": source, "split": "test", "task": "grounding" if boxes else "vqa",
            "images": [image], "answer": answer,
            "messages": [{"role": "user", "content": "<image>\nq"}, {"role": "assistant", "content": "a"}]}


def test_missing_images_get_stand_ins_of_the_record_size_with_boxes_and_are_counted(tmp_path):
    real = tmp_path / "real.png"
    Image.new("RGB", (10, 10)).save(real)
    folder = tmp_path / "mix"
    write_jsonl([_record(0, str(real)),
                 _record(1, "/nowhere/a.png", boxes=[{"bbox": [10, 20, 60, 80], "label": "mass"}], size=[200, 100]),
                 _record(2, "/nowhere/b.png", source="slake")], folder / "mix-00000.jsonl")
    counts = stand_in_images(folder, tmp_path / "standins")
    assert counts == {"nih": 1, "slake": 1}
    rows = [json.loads(x) for x in (folder / "mix-00000.jsonl").read_text().splitlines()]
    assert rows[0]["images"] == [str(real)]  # present images are kept
    boxed = Image.open(rows[1]["images"][0])
    assert boxed.size == (200, 100)  # the pixel space of the ground-truth boxes
    assert boxed.getpixel((10, 50)) == 255 and boxed.getpixel((100, 90)) == 96  # box outline drawn, grey elsewhere
    assert Image.open(rows[2]["images"][0]).size == (512, 512)
    assert stand_in_images(folder, tmp_path / "standins") == counts  # re-running reads the count back


def test_cpu_caps_change_sizes_not_the_recipes_logic(tmp_path):
    cfg = RehearseConfig(recipe=str(ROOT / "recipes/medmo-8b/pipeline.yaml"), data_root=str(tmp_path))
    stage = load_recipe(ROOT / "recipes/medmo-8b/stage2_sft.yaml")
    changed = scale_stage("sft", stage, cfg)
    assert changed["max_pixels"] == (1280 * 1280, cfg.max_pixels) and changed["bf16"] == (True, False)
    assert stage.packing and stage.train_vision and stage.lora == load_recipe(
        ROOT / "recipes/medmo-8b/stage2_sft.yaml").lora  # packing, freezing and LoRA stay the recipe's
    grpo = load_recipe(ROOT / "recipes/medmo-8b/stage4_grpo.yaml")
    rewards = dict(grpo.rewards)
    changed = scale_stage("grpo", grpo, cfg)
    assert not grpo.use_vllm and grpo.per_device_train_batch_size == grpo.num_generations == cfg.num_generations
    assert grpo.rewards == rewards and grpo.beta > 0 and "rewards" not in changed


def test_a_stage_without_any_source_names_what_it_looked_for(tmp_path):
    cfg = RehearseConfig(recipe=str(ROOT / "recipes/medmo-8b/pipeline.yaml"), data_root=str(tmp_path))
    with pytest.raises(ValueError, match=r"stage stage2_sft: no data.*medsg_bench/"):
        stage_data(str(ROOT / "recipes/data/stage2_mix.yaml"), cfg, tmp_path / "out", "stage2_sft", {})


def test_bad_options_fail_before_any_work(tmp_path):
    with pytest.raises(FileNotFoundError, match="data-root"):
        RehearseConfig(recipe=str(ROOT / "recipes/medmo-8b/pipeline.yaml"), data_root=str(tmp_path / "none"))
    with pytest.raises(ValueError, match="steps"):
        load_config(RehearseConfig, None, ["steps=0"], recipe=str(ROOT / "recipes/medmo-8b/pipeline.yaml"),
                    data_root=str(tmp_path))
    cli = subprocess.run([sys.executable, "-m", "medmo", "train", "recipes/medmo-8b/pipeline.yaml", "--rehearse"],
                         cwd=ROOT, capture_output=True, text=True)
    assert cli.returncode == 2 and "--data-root" in cli.stderr


@pytest.mark.slow
@pytest.mark.parametrize("size", ["medmo-8b", "medmo-4b"])
def test_the_shipped_pipeline_rehearses_on_shared_data(size, tmp_path):
    """The issue's acceptance run, from a folder outside the checkout (recipe paths resolve from the recipe)."""
    out = tmp_path / "rehearse"
    cmd = [sys.executable, "-m", "medmo", "train", str(ROOT / f"recipes/{size}/pipeline.yaml"), "--rehearse",
           "--data-root", str(SHARED), "--out", str(out)]
    if size == "medmo-4b":
        cmd.append("eval_limit=2")
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    stages = results["stages"]
    assert [s["stage"] for s in stages] == ["stage1_sft", "stage2_sft", "stage3_sft", "stage4_grpo"]
    for s in stages:
        assert s["samples"] > 0 and s["steps"] > 0 and s["logged_steps"] > 0 and s["first"] is not None
        assert any(src["status"] == "used" for src in s["sources"])
        assert any(src["status"].startswith("not found") for src in s["sources"]) or s["stage"] == "stage2_sft"
    assert {"grounding"} <= set(stages[3]["tasks"]) and {"vqa", "mcq"} & set(stages[3]["tasks"])
    assert stages[3]["scaled"]["use_vllm"] == [True, False]
    assert (out / "export" / "config.json").exists() and (out / "results.md").exists()
    assert results["eval"]["benchmarks"]["vqa_rad"]["n"] > 0
    assert "stage4_grpo" in proc.stdout  # the table is printed


def test_the_cli_passes_recipe_data_root_out_and_overrides(tmp_path, monkeypatch):
    import medmo.rehearse
    from medmo.cli import main

    seen = {}
    monkeypatch.setattr(medmo.rehearse, "run", lambda cfg: seen.setdefault("cfg", cfg) and tmp_path)
    recipe = str(ROOT / "recipes/medmo-8b/pipeline.yaml")
    assert main(["train", recipe, "--rehearse", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"),
                 "steps=3"]) == 0
    cfg = seen["cfg"]
    assert (cfg.recipe, cfg.data_root, cfg.out, cfg.steps) == (recipe, str(tmp_path), str(tmp_path / "o"), 3)
