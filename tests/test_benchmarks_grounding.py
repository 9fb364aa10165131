"""Grounding benchmarks: each loads its fixture (real shared files where they exist,
release-format files written here otherwise), scores hand-made responses in both modes,
and a tiny-model run goes through medmo.eval.runner.evaluate_records."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmo.boxes import Box
from medmo.eval.benchmarks import benchmark_names, get_benchmark
from medmo.model.prompts import PROMPT_VERSION
from test_sources_grounding import medsg_test_items

GROUNDING = ("bacteria", "cell", "deeplesion", "medsg_multi_view", "medsg_object_tracking", "medsg_referring",
             "nih_chestxray14")


def coco_folder(tmp_path):
    """A two-image bacteria set in COCO json (the release format), images on disk."""
    (tmp_path / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(2):
        Image.new("RGB", (120, 80), (20, 20, 20)).save(tmp_path / "images" / f"b{i}.png")
        images.append({"id": i, "file_name": f"b{i}.png", "width": 120, "height": 80})
        anns += [{"id": 2 * i, "image_id": i, "category_id": 1, "bbox": [10, 10, 20, 10]},
                 {"id": 2 * i + 1, "image_id": i, "category_id": 1, "bbox": [60, 40, 30, 20]}]
    (tmp_path / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "bacterium"}]}))
    return tmp_path


def medsg_folder(tmp_path):
    (tmp_path / "medsg").mkdir()
    (tmp_path / "medsg" / "test.json").write_text(json.dumps(medsg_test_items(tmp_path / "medsg")))
    return tmp_path / "medsg"


@pytest.fixture
def data_for(tmp_path, shared_data):
    """benchmark name -> its --data (None = the benchmark's default under shared/data)."""
    medsg = medsg_folder(tmp_path)
    return {"bacteria": coco_folder(tmp_path / "coco"), "cell": None, "deeplesion": None, "nih_chestxray14": None,
            "medsg_multi_view": medsg, "medsg_object_tracking": medsg, "medsg_referring": medsg}


def test_registered_with_conventions():
    assert set(GROUNDING) <= set(benchmark_names("grounding"))
    for name in GROUNDING:
        bench = get_benchmark(name)
        assert bench.family == "grounding" and bench.box_format == "grid"
        assert bench.version.endswith(f".p{PROMPT_VERSION}")  # prompt version recorded


@pytest.mark.parametrize("name", GROUNDING)
def test_loads_and_scores_hand_made_responses(name, data_for):
    bench = get_benchmark(name)
    records = bench.load(data_for[name])
    assert records and all(r.task == "grounding" and r.answer["boxes"] for r in records)
    samples = []
    for k, rec in enumerate(records[:4]):
        sample = rec.to_dict()
        w, h = rec.answer["image_size"]
        gt = [Box.from_record(b) for b in rec.answer["boxes"]]
        perfect = bench.score(sample, rec.target, "strict")  # the rendered target, read back from the grid
        assert perfect["score"] > 0.9 and not perfect["parse_failure"]
        pixels = "[" + ", ".join(str(v) for v in gt[0].as_list()) + "]"
        as_pixels = bench.score({**sample, "box_format": "pixels"}, pixels, "strict")  # the user's --box-format
        assert as_pixels["score"] == pytest.approx(1.0 / len(gt))
        garbage = bench.score(sample, "I cannot see any lesion.", "strict")
        assert garbage == {**garbage, "score": 0.0, "parse_failure": True}
        samples.append({**sample, **(perfect if k % 2 == 0 else garbage)})
    agg = bench.aggregate(samples)
    assert agg["n"] == len(samples) and agg["parse_failures"] == len(samples) // 2
    assert 0 < agg["mean_iou"] <= 1 and set(agg) >= {"iou@0.3", "iou@0.5", "iou@0.7"}


MEDSG_MODE_CASES = [
    # (response on the grid, strict score, medevalkit score)
    ("<box>[[89, 119, 298, 357]]</box>", 1.0, 1.0),                                  # the target (grid rounding: 0.996)
    ("<box>[[89, 119, 298, 357], [0, 0, 50, 50]]</box>", 0.5, 1.0),                  # extra box: costs in strict only
    ("<box>[[0, 0, 50, 50], [89, 119, 298, 357]]</box>", 0.5, 0.0),                  # MedSG scores the FIRST box
    ("nothing here", 0.0, 0.0),                                                      # parse failure
]


@pytest.mark.parametrize("response,strict,reference", MEDSG_MODE_CASES)
def test_medsg_modes(response, strict, reference, data_for):
    bench = get_benchmark("medsg_referring")
    sample = bench.load(data_for["medsg_referring"])[0].to_dict()
    assert sample["answer"]["boxes"][0]["bbox"] == [30, 40, 100, 120]
    assert bench.score(sample, response, "strict")["score"] == pytest.approx(strict, abs=5e-3)
    assert bench.score(sample, response, "medevalkit")["score"] == pytest.approx(reference, abs=5e-3)


def test_breakdowns(data_for):
    nih = get_benchmark("nih_chestxray14")
    recs = nih.load(None)
    samples = [{**r.to_dict(), **nih.score(r.to_dict(), r.target, "strict")} for r in recs[:50]]
    agg = nih.aggregate(samples)
    assert sum(g["n"] for g in agg["by_finding"].values()) == 50
    cell = get_benchmark("cell")
    (rec,) = cell.load(None)
    half = Box.from_record(rec.answer["boxes"][0]).to_grid(512, 512)  # one cell found out of 125
    scored = cell.score(rec.to_dict(), f"cell <box>[[{int(half.x1)}, {int(half.y1)}, {int(half.x2)}, {int(half.y2)}]]</box>",
                        "strict")
    agg = cell.aggregate([{**rec.to_dict(), **scored}])
    assert agg["cells"] == 125 and agg["cell_recall@0.5"] == pytest.approx(1 / 125)
    assert sum(g["n"] for g in agg["cell_recall@0.5_by_size"].values()) == 125
    assert set(agg["by_density"]) == {"dense"}


def test_bacteria_needs_data_and_reads_yolo_and_masks(tmp_path):
    bench = get_benchmark("bacteria")
    with pytest.raises(FileNotFoundError, match="--data"):
        bench.load(None)
    (tmp_path / "y" / "images").mkdir(parents=True)
    (tmp_path / "y" / "labels").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "y" / "images" / "a.png")
    (tmp_path / "y" / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (rec,) = bench.load(tmp_path / "y")
    assert rec.source == "bacteria" and rec.answer["boxes"][0]["bbox"] == [24, 24, 40, 40]
    assert rec.prompt.endswith("Detect and localize all bacteria in the image.")
    (tmp_path / "m" / "images").mkdir(parents=True)
    (tmp_path / "m" / "masks").mkdir()
    labels = np.zeros((32, 32), np.uint8)
    labels[4:8, 4:12] = 1
    Image.fromarray(labels).save(tmp_path / "m" / "masks" / "a.png")
    Image.new("L", (32, 32)).save(tmp_path / "m" / "images" / "a.png")
    (rec,) = bench.load(tmp_path / "m")
    assert rec.answer["boxes"] == [{"bbox": [4, 4, 12, 8], "label": "bacterium"}]


def test_tiny_model_run(tiny_dir, data_for, tmp_path):
    from medmo.eval.runner import evaluate_records

    records = get_benchmark("medsg_referring").load(data_for["medsg_referring"])[:1]
    records += get_benchmark("bacteria").load(data_for["bacteria"])[:1]
    results = evaluate_records(tiny_dir, records, tmp_path / "run", max_new_tokens=12, batch_size=2)
    assert results["n"] == 2 and 0.0 <= results["mean_iou"] <= 1.0
    lines = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all("response" in s and "score" in s for s in lines)


def test_synthetic_cells_generates_the_demo_held_out_set(tmp_path, monkeypatch):
    from medmo.eval.benchmarks import get_benchmark

    monkeypatch.setenv("MEDMO_CACHE", str(tmp_path))
    bench = get_benchmark("synthetic_cells")
    records = bench.load(None)
    assert len(records) == 128 and all(r.answer["image_size"] == [64, 64] for r in records)
    assert all(Path(r.images[0]).exists() for r in records)
    again = bench.load(None)  # deterministic and cached: same ids, same boxes
    assert [r.answer for r in again] == [r.answer for r in records]
    sample = records[0].to_dict()
    perfect = bench.score(sample, records[0].target, "strict")
    assert perfect["score"] > 0.95 and not perfect["parse_failure"]
    assert bench.score(sample, "no idea", "strict")["parse_failure"]
