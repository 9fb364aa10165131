"""Model families: box formats read per family (fast), and a tiny checkpoint of each family
built offline and evaluated end to end through the CLI (slow). The tiny models are
untrained, so their answers are junk: the end-to-end tests check that a run completes,
writes samples and results, and counts parse failures, not what the answers say."""
from __future__ import annotations

import json
import logging

import pytest
from PIL import Image
from transformers import Gemma3ImageProcessor, Qwen2VLImageProcessor

from medmo.cli import main
from medmo.eval.grounding import score_grounding
from medmo.model.families import FAMILIES, box_format_for, check_box_format, pixel_space, resize_spec, resized_size
from medmo.model.tiny_families import ARCHS


@pytest.fixture
def qwen2_5_folder(tmp_path):
    """A folder with a Qwen2.5-VL config.json and image processor (what box_format_for reads)."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    Qwen2VLImageProcessor(patch_size=14, merge_size=2, size={"shortest_edge": 3136, "longest_edge": 200_000}) \
        .save_pretrained(tmp_path)
    return tmp_path


# (width, height): small images scale up to min_pixels, large ones down to max_pixels, odd ones round
SIZES = [(300, 200), (333, 517), (1000, 37), (2000, 1500), (57, 57)]


@pytest.mark.parametrize("width, height", SIZES)
def test_resized_size_is_what_the_processor_feeds_the_model(qwen2_5_folder, width, height):
    spec = resize_spec(qwen2_5_folder)
    assert spec == "resized:28:3136:200000"
    ip = Qwen2VLImageProcessor.from_pretrained(qwen2_5_folder)
    _, gh, gw = ip(images=[Image.new("RGB", (width, height))], return_tensors="pt")["image_grid_thw"][0].tolist()
    assert resized_size(spec, width, height) == (gw * 14, gh * 14)
    assert resize_spec(qwen2_5_folder, max_pixels=50_000) == "resized:28:3136:50000"  # the run's --max-pixels


def test_resized_answers_map_back_exactly():
    spec, (w, h) = "resized:28:3136:1003520", (333, 517)
    rw, rh = resized_size(spec, w, h)
    assert (rw, rh) != (w, h)
    gt = [30, 40, 200, 300]
    answer = {"boxes": [{"bbox": gt}], "image_size": [w, h]}
    said = [round(v * s) for v, s in zip(gt, (rw / w, rh / h, rw / w, rh / h))]  # what Qwen2.5-VL writes
    response = json.dumps([{"bbox_2d": said, "label": "cell"}])
    exact = score_grounding(answer, response, spec)
    assert exact["score"] > 0.99 and exact["parsed"][0] == pytest.approx(gt, abs=1)
    # read as pixels of the original image, the same answer is off by the resize scale
    assert score_grounding(answer, response, "pixels")["score"] < exact["score"] - 0.01
    assert pixel_space(spec, w, h) == ("pixels", (rw, rh)) and pixel_space("grid", w, h) == ("grid", None)


def test_box_format_for_reads_the_family_and_keeps_the_override(qwen2_5_folder, tmp_path, caplog):
    assert box_format_for(qwen2_5_folder) == "resized:28:3136:200000"
    assert box_format_for(qwen2_5_folder, override="pixels") == "pixels"
    assert box_format_for(qwen2_5_folder, override="grid") == "grid"
    for family, want in (("qwen3_vl", None), ("internvl", None), ("gemma3", None), ("llava_onevision", None)):
        folder = tmp_path / family
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": family}))
        assert box_format_for(folder) == want, family  # None: the grid, every benchmark's default
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"model_type": "mystery_vlm"}))
    with caplog.at_level(logging.WARNING):
        assert box_format_for(tmp_path / "odd") is None
    assert "--box-format" in caplog.text
    Gemma3ImageProcessor(size={"height": 64, "width": 64}).save_pretrained(tmp_path / "gemma3")
    with pytest.raises(ValueError, match="no smart resize"):  # fixed tiles: resized pixels mean nothing
        box_format_for(tmp_path / "gemma3", override="resized")
    assert set(ARCHS.names()) <= set(FAMILIES)  # every tiny family has a documented box format


@pytest.mark.parametrize("spec", ["pixel", "resized:28:3136", "resized:a:b:c", "resized:0:1:2"])
def test_bad_box_format_says_what_is_valid(spec):
    with pytest.raises(ValueError, match="resized:FACTOR:MIN_PIXELS:MAX_PIXELS"):
        check_box_format(spec)


def test_unknown_arch_did_you_mean(tmp_path):
    from medmo.model.tiny import build_tiny

    with pytest.raises(ValueError, match="Did you mean 'qwen2_5_vl'"):
        build_tiny(tmp_path / "x", arch="qwen25_vl")
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------- end to end, per family

CLASSES = {"qwen3_vl": "Qwen3VLForConditionalGeneration", "qwen3_vl_moe": "Qwen3VLMoeForConditionalGeneration",
           "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration", "internvl": "InternVLForConditionalGeneration",
           "gemma3": "Gemma3ForConditionalGeneration", "llava_onevision": "LlavaOnevisionForConditionalGeneration"}


def _grounding_record(folder):
    Image.new("RGB", (300, 200), "gray").save(folder / "cells.png")
    rec = {"id": "cells/0", "source": "synthetic", "split": "test", "task": "grounding", "modality": "microscopy",
           "images": ["cells.png"],
           "messages": [{"role": "user", "content": "<image>Detect and localize all cells in the image."}],
           "answer": {"boxes": [{"bbox": [30, 40, 120, 150], "label": "cell"}], "image_size": [300, 200]}}
    (folder / "one.jsonl").write_text(json.dumps(rec) + "\n")
    return folder / "one.jsonl"


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(CLASSES))
def test_family_builds_offline_and_evaluates_end_to_end(arch, tmp_path, shared_data):
    from medmo.model.load import load

    ckpt = tmp_path / arch
    assert main(["tiny", "--arch", arch, "--out", str(ckpt)]) == 0
    model, processor = load(ckpt)  # AutoModelForImageTextToText / AutoProcessor, as a hub checkpoint loads
    assert type(model).__name__ == CLASSES[arch] and model.config.model_type == arch
    assert str(model.dtype) == "torch.float32"

    out = tmp_path / "vqa"
    assert main(["eval", "--model", str(ckpt), "--benchmark", "vqa_rad", "--data", str(shared_data / "vqa_rad"),
                 "--limit", "8", "--max-new-tokens", "8", "--batch-size", "4", "--no-plots", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    bench = results["benchmarks"]["vqa_rad"]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert bench["n"] == 8 and bench["n_failed"] == 0 and len(samples) == 8
    assert all("response" in s and "correct" in s for s in samples)
    assert isinstance(bench["parse_failures"], int) and 0 <= bench["parse_failures"] <= 8

    out = tmp_path / "ground"
    assert main(["eval", "--model", str(ckpt), "--records", str(_grounding_record(tmp_path)),
                 "--max-new-tokens", "8", "--no-plots", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    bench = results["benchmarks"]["one"]
    assert bench["n"] == 1 and bench["n_failed"] == 0 and bench["parse_failures"] in (0, 1)
    assert 0.0 <= bench["mean_iou"] <= 1.0
    want = "resized:28:3136:262144" if arch == "qwen2_5_vl" else None  # the family's box format, recorded
    assert results["box_format"] == want


def test_bare_resized_needs_numbers_without_a_checkpoint(tmp_path):
    from medmo.eval.runner import EvalConfig, run

    cfg = EvalConfig(model="served-name", backend="openai", base_url="http://127.0.0.1:9/v1",
                     records=str(tmp_path / "none.jsonl"), box_format="resized", out=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="resized:FACTOR:MIN_PIXELS:MAX_PIXELS"):
        run(cfg)


def test_a_model_type_transformers_cannot_load_says_what_to_use(tmp_path):
    from medmo.model.load import load_model

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "internvl_chat"}))
    with pytest.raises(ValueError, match="InternVL3-8B-hf"):
        load_model(tmp_path)
