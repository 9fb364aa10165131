"""`medmo export`: LoRA merged into a plain Hugging Face checkpoint that reloads with the
same outputs, processor included, and a model card listing stages, data and results."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from medmo.cli import main
from medmo.config import make_run_dir
from medmo.train.export import ExportConfig, find_results, run
from medmo.train.sft import SFTConfig


def _inputs(processor):
    from PIL import Image

    conv = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (96, 64), (200, 40, 90))},
                                          {"type": "text", "text": "Locate the lesion."}]}]
    return processor.apply_chat_template(conv, tokenize=True, return_dict=True, return_tensors="pt",
                                         add_generation_prompt=True)


@pytest.fixture(scope="module")
def pipeline_run(tiny_dir, tmp_path_factory):
    """A two-stage run folder: stage 1 a full model, stage 2 a LoRA run stopped at a checkpoint."""
    from peft import LoraConfig, get_peft_model

    from medmo.model.load import load_model

    root = tmp_path_factory.mktemp("runs") / "pipe"
    data = root / "data.jsonl"
    root.mkdir(parents=True)
    data.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c"}\n')
    s1, s2 = root / "stage1_sft", root / "stage2_sft"
    make_run_dir(s1, SFTConfig(model=str(tiny_dir), data=[str(data)], output_dir=str(s1), max_pixels=16384))
    shutil.copytree(tiny_dir, s1, dirs_exist_ok=True)  # stage 1's final model
    (s1 / "log.jsonl").write_text('{"step": 10, "loss": 2.5}\n{"step": 20, "loss": 1.25}\n')
    make_run_dir(s2, SFTConfig(model=str(s1), data=[str(data)], output_dir=str(s2), lora={"enabled": True}))
    torch.manual_seed(0)
    peft = get_peft_model(load_model(s1), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                     init_lora_weights=False))  # non-zero adapters
    peft.save_pretrained(s2 / "checkpoint-5")
    (s2 / "checkpoint-5" / "trainer_state.json").write_text('{"global_step": 5}')  # written last by the Trainer
    (s2 / "log.jsonl").write_text('{"step": 5, "loss": 0.75}\n')
    (root / "stages.json").write_text(json.dumps([{"stage": "stage1_sft", "run_dir": str(s1)},
                                                  {"stage": "stage2_sft", "run_dir": str(s2)}]))
    (root / "eval" / "cells").mkdir(parents=True)
    (root / "eval" / "cells" / "results.json").write_text(json.dumps({"n": 40, "mean_iou": 0.5123, "iou@0.5": 0.55}))
    return root, peft


def test_export_merges_lora_and_writes_a_card(pipeline_run, tiny_dir, tmp_path):
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    root, peft = pipeline_run
    out = run(ExportConfig(run_dir=str(root), out=str(tmp_path / "MedMO-tiny"), checkpoint="last"))

    model = Qwen3VLForConditionalGeneration.from_pretrained(out).eval()  # plain transformers, no PEFT
    assert not any("lora" in k for k in model.state_dict())
    processor = AutoProcessor.from_pretrained(out)
    inputs = _inputs(processor)
    with torch.no_grad():
        want = peft.eval()(**inputs).logits
        got = model(**inputs).logits
        base = Qwen3VLForConditionalGeneration.from_pretrained(tiny_dir).eval()(**inputs).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, base, atol=1e-3)  # the adapters really changed the weights

    card = (out / "README.md").read_text()
    table = card.split("## Training stages")[1]
    assert table.index("| stage1_sft |") < table.index("| stage2_sft |")  # stages in training order
    assert "data.jsonl` (3)" in card  # data files with their record counts
    assert "| 1.25 |" in card and "| 0.75 |" in card  # last logged loss per stage
    assert "0.5123" in card and "eval/cells/results.json" in card  # evaluation results found in the run
    meta = json.loads((out / "medmo_export.json").read_text())
    assert [s["stage"] for s in meta["stages"]] == ["stage1_sft", "stage2_sft"] and meta["stages"][1]["lora"]


def test_export_final_model_via_cli(pipeline_run, tmp_path, capsys):
    root, _ = pipeline_run
    s1 = root / "stage1_sft"
    assert main(["export", str(s1), "--out", str(tmp_path / "s1")]) == 0
    assert (tmp_path / "s1" / "config.json").exists() and (tmp_path / "s1" / "README.md").exists()
    # stage 2 never finished: exporting its final model says what to do instead
    assert main(["export", str(root), "--out", str(tmp_path / "x")]) == 2
    assert "--checkpoint last" in capsys.readouterr().err


def test_export_rejects_a_folder_without_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no training run"):
        run(ExportConfig(run_dir=str(tmp_path), out=str(tmp_path / "out")))


def test_find_results_reads_demo_and_benchmark_layouts(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "results.json").write_text(json.dumps(
        {"stages": [{"stage": "untrained", "mean_iou": 0.1}, {"stage": "stage1_sft", "mean_iou": 0.4}]}))
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "results.json").write_text(json.dumps(
        {"vqa_rad": {"n": 451, "accuracy": 0.6}, "meta": {"model": "x"},
         "iu_xray": {"n": 2, "cider_d": 0.31, "rule_chexpert_f1_micro14": 0.4}}))
    rows = find_results(tmp_path)
    # the report benchmarks' own metric names reach the card
    assert {"cider_d": 0.31, "rule_chexpert_f1_micro14": 0.4}.items() <= rows[-1].items()
    rows = rows[:-1]
    assert [(r["name"], r.get("mean_iou", r.get("accuracy"))) for r in rows] == [
        ("untrained", 0.1), ("stage1_sft", 0.4), ("vqa_rad", 0.6)]
