"""`medmo data stats`: counts, image sizes from headers, answer lengths, outputs a person reads."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from data_helpers import vqa, write_folder, write_images
from medmo.cli import main
from medmo.data.stats import StatsConfig, collect, hist_quantile, image_size, run


@pytest.fixture
def folder(tmp_path):
    pngs = write_images(tmp_path / "img", 2, size=(48, 40))
    recs = [vqa(f"a/{i}", f"q{i}?", "yes", [pngs[i % 2]], source="a", split="train") for i in range(5)]
    recs += [vqa(f"b/{i}", f"q{i}?", "a small nodule in the left lung", [], source="b", split="test",
                 modality="xray") for i in range(3)]
    recs.append(vqa("b/0", "dup?", "no", ["img/missing.png"], source="b", split="test"))  # duplicate id, missing image
    return write_folder(tmp_path / "recs", recs, shard_size=4)


def test_collect_counts(folder):
    s = collect(folder)
    assert s["records"] == 9 and s["duplicate_ids"] == 1
    assert s["by_source"] == {"a": 5, "b": 4}
    assert s["by_split"] == {"test": 4, "train": 5}
    assert s["by_modality"] == {"ct": 6, "xray": 3}
    assert s["by_source_split"] == {"a/train": 5, "b/test": 4}
    assert s["by_images_per_record"] == {"0": 3, "1": 6}
    assert s["image_sizes"] == {"48x40": 5}
    assert s["images_over_budget"] == {"768x768": 0, "1280x1280": 0}
    assert s["images"] == {"ok": 5, "missing_or_unreadable": 1}
    assert s["answer_words"] == {"1": 6, "7": 3}


def test_run_writes_json_markdown_and_pngs(folder, tmp_path):
    out = run(StatsConfig(dir=str(folder), out=str(tmp_path / "st")))
    assert json.loads((out / "stats.json").read_text())["records"] == 9
    md = (out / "stats.md").read_text()
    assert "| a | 5 | 55.6% |" in md and "median 1" in md
    for png in ("image_sizes.png", "answer_lengths.png"):
        with Image.open(out / png) as im:
            assert im.width > 100


def test_image_size_reads_headers_of_every_format(tmp_path):
    assert image_size(Path(get_testdata_file("CT_small.dcm", download=False))) == (128, 128)
    assert image_size(Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii") == (33, 41)
    assert image_size(tmp_path / "none.png") is None


@pytest.mark.parametrize("hist,q,expected", [
    ({1: 1, 2: 1, 3: 1}, 0.5, 2),     # odd count: the middle value
    ({1: 9, 50: 1}, 0.5, 1),          # skewed: the bulk
    ({1: 9, 50: 1}, 0.95, 50),        # the tail
])
def test_hist_quantile(hist, q, expected):
    assert hist_quantile(hist, q) == expected


def test_cli_default_out(folder):
    assert main(["data", "stats", str(folder)]) == 0
    assert (folder / "stats" / "stats.md").exists()


def test_a_single_records_file_works_too(folder):
    shard = sorted(folder.glob("*.jsonl"))[0]
    out = run(StatsConfig(dir=str(shard)))
    assert out == shard.with_name(shard.stem + "_stats")
    assert json.loads((out / "stats.json").read_text())["records"] == 4


def test_images_over_stage_budgets(tmp_path):
    Image.new("RGB", (800, 800)).save(tmp_path / "big.png")      # > 768^2, < 1280^2
    Image.new("RGB", (1300, 1300)).save(tmp_path / "huge.png")   # > both
    recs = [vqa("a", "q?", "x", [str(tmp_path / "big.png")]), vqa("b", "q?", "x", [str(tmp_path / "huge.png")])]
    s = collect(write_folder(tmp_path / "r", recs))
    assert s["images_over_budget"] == {"768x768": 2, "1280x1280": 1}


def _rec(source="toy", modality="ct", question="", answer="", **meta):
    return {"source": source, "modality": modality, "meta": meta,
            "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.mark.parametrize("record,system", [
    (_rec(body_part="Chest", question="What is in the brain?"), "chest"),  # 1. the source's own body part first
    (_rec(location_category="Spine and Muscles"), "musculoskeletal"),  # MedPix's location category
    (_rec(image_organ="ABD"), "abdomen"),  # VQA-RAD's organ code
    (_rec(image_organ="XYZ", question="Is the liver enlarged?"), "abdomen"),  # an unknown part: the text decides
    (_rec(source="mimic_cxr", question="Describe the image."), "chest"),  # 2. the source's system
    (_rec(source="pubmedvision", modality="fundus", question="Describe."), "eye"),  # 3. the modality's
    (_rec(modality="pathology", question="Which organ is this?"), "cells/pathology"),
    (_rec(question="Is there a mass in the left breast?"), "breast"),  # 4. keywords: breast before chest
    (_rec(question="Where is the lesion?", answer="In the left kidney."), "abdomen"),  # the answer counts too
    (_rec(question="Is there pulmonary edema?"), "chest"),  # a word prefix: pulmon- matches pulmonary
    (_rec(question="Is the hip joint normal?"), "musculoskeletal"),
    (_rec(question="What modality is this?"), "other"),  # 5. nothing says
    (_rec(question="Is there a polyp in the colon?"), "GI tract"),
    (_rec(question="Anything in the tribune?"), "other"),  # "rib" only at a word start
])
def test_body_system_rule(record, system):
    from medmo.data.stats import BODY_SYSTEMS, body_system

    assert body_system(record) == system and system in BODY_SYSTEMS


def test_stats_over_a_converted_source_report_modality_and_body_system(tmp_path):
    from medmo.data.convert import ConvertConfig, run as convert

    fixture = Path(__file__).parent / "fixtures" / "pubmedvision"
    out = convert(ConvertConfig(source="pubmedvision", raw=str(fixture), out=str(tmp_path / "pmv")))
    s = collect(out)
    assert s["by_modality"] == {"ct": 1, "microscopy": 1, "mri": 1}
    assert s["by_body_system"] == {"GI tract": 1, "brain/head": 1, "chest": 1}  # body_part Colon, Brain, Chest
    md = (run(StatsConfig(dir=str(out))) / "stats.md").read_text()
    assert "## by body system" in md and "| GI tract | 1 | 33.3% |" in md
