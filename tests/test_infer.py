"""medmo infer: task prompts, report sections, boxes grid -> pixels, the CLI end to end
(PNG drawn, JSON printed, DICOM and NIfTI read) on the tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmo.cli import main
from medmo.infer import InferConfig, format_result, interpret, split_report, task_prompt
from medmo.model.prompts import GROUND_TARGET, REPORT_SECTIONS

SPLIT_CASES = [
    # (text, findings, impression)
    ("Findings: clear lungs. Impression: normal.", "clear lungs.", "normal."),  # the asked-for format
    ("FINDINGS:\nNo effusion.\n\nIMPRESSION:\nNo acute disease.", "No effusion.", "No acute disease."),  # upper case
    ("Impression: normal. Findings: clear.", "clear.", "normal."),  # sections in the other order
    ("Heart size normal. Impression: normal chest.", "Heart size normal.", "normal chest."),  # no findings header
    ("Lungs are clear.", "Lungs are clear.", ""),  # no header at all: all findings
    ("", "", ""),  # empty answer
    ("Findings: a. Findings: b.", "a. b.", ""),  # repeated section is joined
]


@pytest.mark.parametrize("text,findings,impression", SPLIT_CASES)
def test_split_report(text, findings, impression):
    assert split_report(text) == {"findings": findings, "impression": impression}


def test_task_prompts_and_config_validation():
    assert task_prompt("ground", target="nodule") == GROUND_TARGET.format(target="nodule")
    assert task_prompt("report") == REPORT_SECTIONS
    assert task_prompt("vqa", prompt="Is it normal?") == "Is it normal?"
    with pytest.raises(ValueError, match="target"):
        task_prompt("ground")
    with pytest.raises(ValueError, match="task must be one of"):
        InferConfig(model="m", image="i", task="segment")
    with pytest.raises(ValueError, match="--prompt"):
        InferConfig(model="m", image="i", task="vqa")


def test_interpret_maps_grid_boxes_to_pixels_with_labels():
    out = interpret("ground", "nodule <box>[[100, 200, 400, 600]]</box> <box>[[0, 0, 1000, 1000]]</box>",
                    (500, 250), target="lesion")
    assert out["boxes"][0] == {"bbox": [50.0, 50.0, 200.0, 150.0], "grid": [100, 200, 400, 600], "label": "nodule"}
    assert out["boxes"][1] == {"bbox": [0.0, 0.0, 500.0, 250.0], "grid": [0, 0, 1000, 1000], "label": "lesion"}
    assert out["labels"] == ["lesion", "nodule"] and out["image_size"] == [500, 250] and out["target"] == "lesion"
    # a box with no label of its own takes the target's name (the second box above too)
    assert interpret("ground", "[10, 10, 20, 20]", (100, 100), "cyst")["boxes"][0]["label"] == "cyst"
    # garbage: no boxes, no crash
    assert interpret("vqa", "no idea [[[", (10, 10))["boxes"] == []
    assert interpret("report", "Findings: x Impression: y", (10, 10))["impression"] == "y"


def _run(capsys, *argv) -> str:
    assert main(["infer", *argv]) == 0
    return capsys.readouterr().out


def test_cli_draws_png_and_prints_json(tiny_dir, tmp_path, capsys):
    img = tmp_path / "in.png"
    Image.new("RGB", (96, 64), (30, 60, 90)).save(img)
    out = tmp_path / "drawn.png"
    printed = _run(capsys, "--model", str(tiny_dir), "--image", str(img), "--task", "ground", "--target", "nodule",
                   "--draw", str(out), "--json", "--max-new-tokens", "4")
    result = json.loads(printed)
    assert set(result) >= {"answer", "boxes", "labels", "image_size", "task", "target", "drawn"}
    assert result["image_size"] == [96, 64] and result["task"] == "ground"
    drawn = Image.open(out)
    assert drawn.format == "PNG" and drawn.size == (96, 64)


def test_cli_reads_dicom(tiny_dir, tmp_path, capsys):
    from pydicom.data import get_testdata_file

    ct = get_testdata_file("CT_small.dcm")
    printed = _run(capsys, "--model", str(tiny_dir), "--image", ct, "--window", "lung", "--prompt", "Is there a nodule?",
                   "--json", "--max-new-tokens", "4", "--draw", str(tmp_path / "ct.png"))
    result = json.loads(printed)
    assert result["image_size"] == [128, 128]
    assert "CompressedSamples" not in printed  # the file's PatientName
    assert Image.open(tmp_path / "ct.png").size == (128, 128)


def test_cli_reads_nifti(tiny_dir, capsys):
    import nibabel

    from medmo.imaging import open_image

    nii = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    result = json.loads(_run(capsys, "--model", str(tiny_dir), "--image", str(nii), "--task", "report", "--json",
                             "--max-new-tokens", "4"))
    assert result["image_size"] == list(open_image(nii).size)  # the middle axial slice
    assert set(result) >= {"findings", "impression"}


def test_text_output_lists_boxes():
    result = interpret("ground", "mass <box>[[0, 0, 500, 500]]</box>", (200, 100))
    result["drawn"] = "out.png"
    assert format_result(result).splitlines() == [
        "mass <box>[[0, 0, 500, 500]]</box>", "  box mass: [0, 0, 100, 50] px  (grid [0, 0, 500, 500])",
        "  drawn: out.png"]


def test_cli_bad_image_is_a_clear_error_before_loading_the_model(tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    assert main(["infer", "--model", str(tmp_path / "nowhere"), "--image", str(bad), "--prompt", "q"]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "PNG" in err


def test_boxes_in_the_answer_are_drawn_where_the_grid_says(trained_dir, tmp_path, capsys):
    from serve_model import BOX_GRID, TARGET

    img = tmp_path / "gray.png"
    Image.new("RGB", (300, 200), (128, 128, 128)).save(img)
    out = tmp_path / "boxes.png"
    result = json.loads(_run(capsys, "--model", str(trained_dir), "--image", str(img), "--task", "ground",
                             "--target", TARGET, "--draw", str(out), "--json", "--max-new-tokens", "32"))
    assert [b["grid"] for b in result["boxes"]] == [BOX_GRID]
    assert result["boxes"][0]["bbox"] == [37.5, 50.0, 142.5, 138.0]  # 0-1000 grid scaled to 300 x 200
    pixels = np.asarray(Image.open(out))
    assert tuple(pixels[100, 38]) != (128, 128, 128)  # the box's left edge is drawn
    assert tuple(pixels[100, 90]) == (128, 128, 128)  # its inside is not
    assert tuple(pixels[180, 250]) == (128, 128, 128)  # nor the rest of the image


@pytest.fixture(scope="module")
def trained_dir(tiny_dir, tmp_path_factory):
    """The tiny model fine-tuned to answer grounding prompts with a known box (serve_model.py)."""
    from serve_model import train_fixed_answers

    return train_fixed_answers(tiny_dir, tmp_path_factory.getbasetemp() / "fixed_answers")


# ---- hostile input: one-line errors (exit 2) before any model is loaded ----------------

@pytest.mark.parametrize("argv,words", [
    (["--window", "1,inf"], "finite"),                                   # refused by the one window parser
    (["--window", "nan,400"], "finite"),
    (["--window", "40,0"], "width must be > 0"),
    (["--max-image-pixels", "100"], "over the cap of 100 pixels (max_image_pixels); raise it with "
                                    "`medmo infer --max-image-pixels N`"),
    (["--max-volume-voxels", "0"], "--max-volume-voxels must be > 0"),
])
def test_cli_refuses_bad_windows_and_over_budget_images(tmp_path, capsys, argv, words):
    img = tmp_path / "in.png"
    Image.new("RGB", (20, 10)).save(img)
    assert main(["infer", "--model", str(tmp_path / "nowhere"), "--image", str(img), "--prompt", "q", *argv]) == 2
    assert words in capsys.readouterr().err


def test_cli_on_gzip_junk_prints_one_line_and_no_traceback(tmp_path):
    import os
    import subprocess
    import sys

    junk = tmp_path / "scan.png"
    junk.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 32)  # gzip magic, then junk (zlib.error)
    run = subprocess.run([sys.executable, "-m", "medmo", "infer", "--model", str(tmp_path / "nowhere"), "--image",
                          str(junk), "--prompt", "q"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONWARNINGS": "default"})
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert lines[0].startswith("medmo infer: error: ") and "scan.png: corrupt gzip stream" in lines[0]
