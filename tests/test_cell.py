"""The Cell detection benchmark builder (medmo.data.cell) and `medmo data cell`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medmo.boxes import Box
from medmo.cli import main
from medmo.data.cell import CellConfig, build_records, cell_shapes, eccentricity, solidity
from medmo.data.schema import read_records
from medmo.data.sources import Drops

YY, XX = np.mgrid[-30:31, -30:31]
DISK = (XX ** 2 + YY ** 2) <= 15 ** 2
ELLIPSE = (XX / 20.0) ** 2 + (YY / 10.0) ** 2 <= 1  # axes 2:1 -> eccentricity sqrt(3)/2 for the continuous shape
L_SHAPE = np.zeros((40, 40), bool)
L_SHAPE[5:35, 5:12] = True
L_SHAPE[28:35, 5:35] = True

SHAPE_CASES = [
    # (mask, eccentricity range, solidity range)
    (DISK, (0.0, 0.01), (0.95, 1.0)),        # round and convex
    (ELLIPSE, (0.85, 0.89), (0.93, 1.0)),    # elongated, convex
    (L_SHAPE, (0.0, 1.0), (0.5, 0.65)),      # concave: much of its hull is empty
    (np.ones((1, 1), bool), (0.0, 0.0), (1.0, 1.0)),  # a single pixel: no hull, solidity 1
]


@pytest.mark.parametrize("mask,ecc,sol", SHAPE_CASES)
def test_shape_measures(mask, ecc, sol):
    rows, cols = np.nonzero(mask)
    assert ecc[0] <= eccentricity(rows, cols) <= ecc[1]
    assert sol[0] <= solidity(mask) <= sol[1]


def test_build_on_dsb2018(shared_data):
    drops = Drops()
    (rec,) = build_records(CellConfig(masks=str(shared_data / "cell_nuclei_dsb2018")), drops)
    assert drops.total == 0
    assert rec.prompt == "<image>\nDetect and localize all cells in the image."
    assert len(rec.answer["boxes"]) == 125 and rec.answer["image_size"] == [512, 512]
    assert rec.meta["strata"] == {"size": "medium", "shape": "round", "density": "dense",  # 125 cells / 26 x 10^4 px^2
                                  "count": "many"}
    assert len(rec.meta["cells"]) == 125
    assert {c["size"] for c in rec.meta["cells"]} == {"small", "medium", "large"}
    # each box is its instance's pixel extent, end-exclusive
    import tifffile

    labels = tifffile.imread(shared_data / "cell_nuclei_dsb2018" / "mask2d.tif")
    for box, cell in list(zip(rec.answer["boxes"], rec.meta["cells"]))[:10]:
        r, c = np.nonzero(labels == cell["id"])
        assert box["bbox"] == [c.min(), r.min(), c.max() + 1, r.max() + 1]
        assert cell["area"] == len(r)
    assert rec.target.startswith("cell <box>[[") and rec.target.count("], [") == 124


def test_cli_writes_benchmark_folder(shared_data, tmp_path):
    out = tmp_path / "cell"
    assert main(["data", "cell", "--masks", str(shared_data / "cell_nuclei_dsb2018"), "--out", str(out),
                 "--tile", "256", "max_eccentricity=0.9"]) == 0
    report = json.loads((out / "report.json").read_text())
    records = read_records(out / "records.jsonl")
    assert report["records"] == len(records) == 4
    assert report["cells"] == sum(len(r.answer["boxes"]) for r in records) <= 125  # a cut cell counts in <= 1 tile
    assert report["dropped"]["by_reason"]["cut_by_tile_edge"] > 0  # nuclei on the tile seams
    assert sum(report["cells_by_size"].values()) == report["cells"]
    im = Image.open(out / records[0].images[0])
    assert im.size == (256, 256) and im.mode == "L"  # 16-bit fluorescence written as 8-bit PNG
    assert np.asarray(im).max() == 255
    assert "max_eccentricity: 0.9" in (out / "config.yaml").read_text()


def test_min_area_and_bad_input(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    labels = np.zeros((32, 32), np.uint8)
    labels[2:4, 2:4] = 1        # 4 px: a speck
    labels[10:20, 10:22] = 2    # a cell
    Image.fromarray(labels).save(tmp_path / "masks" / "a.png")
    Image.new("L", (32, 32)).save(tmp_path / "images" / "a.png")
    drops = Drops()
    (rec,) = build_records(CellConfig(masks=str(tmp_path), min_area=10), drops)
    assert [b["bbox"] for b in rec.answer["boxes"]] == [[10, 10, 22, 20]]
    assert dict(drops.counts) == {"too_small": 1}
    assert cell_shapes(labels)[2]["area"] == 120
    with pytest.raises(ValueError, match="min_area"):
        CellConfig(masks=str(tmp_path), min_area=0)
    assert main(["data", "cell", "--masks", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()  # a wrong path leaves no half-made run folder


@pytest.mark.parametrize("n_cells,count", [(1, "few"), (3, "few"), (4, "several"), (15, "several"), (16, "many")])
def test_count_strata(tmp_path, n_cells, count):
    """Cells per image: few < several_cells (4) <= several < many_cells (16) <= many."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    labels = np.zeros((64, 64), np.uint8)
    for k in range(n_cells):  # 4x4 squares on a grid, 16 px apart
        r, c = divmod(k, 4)
        labels[16 * r + 2:16 * r + 6, 16 * c + 2:16 * c + 6] = k + 1
    Image.fromarray(labels).save(tmp_path / "masks" / "a.png")
    Image.new("L", (64, 64)).save(tmp_path / "images" / "a.png")
    (rec,) = build_records(CellConfig(masks=str(tmp_path)), Drops())
    assert len(rec.answer["boxes"]) == n_cells and rec.meta["strata"]["count"] == count


def test_tiles_report_detection_metrics_per_stratum(shared_data, tmp_path):
    """`medmo data cell --tile 128` gives images of several cell counts; the benchmark's aggregate
    reports F1@0.5 and count MAE per count stratum, and per-cell hits agree with tp@0.5."""
    from medmo.eval.benchmarks import get_benchmark

    out = tmp_path / "cell"
    assert main(["data", "cell", "--masks", str(shared_data / "cell_nuclei_dsb2018"), "--out", str(out),
                 "--tile", "128", "several_cells=6", "many_cells=10"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert len(report["strata"]["count"]) >= 2, report["strata"]  # tiles differ in cell count
    bench = get_benchmark("cell")
    samples = []
    for i, rec in enumerate(bench.load(out)):
        boxes = rec.answer["boxes"][: len(rec.answer["boxes"]) // 2] if i % 2 else rec.answer["boxes"]
        w, h = rec.answer["image_size"]
        text = "cell <box>[" + ", ".join(
            str([round(v) for v in Box.from_record(b).to_grid(w, h).as_list()]) for b in boxes) + "]</box>"
        samples.append({**rec.to_dict(), **bench.score(rec.to_dict(), text, "strict")})
    agg = bench.aggregate(samples)
    assert sum(g["n"] for g in agg["by_count"].values()) == len(samples)
    assert set(agg["by_count"]) == set(report["strata"]["count"])
    for g in agg["by_count"].values():
        assert {"f1@0.5", "count_mae", "precision@0.5", "recall@0.5"} <= set(g)
        assert g["precision@0.5"] > 0.9  # every answered box is a true cell (grid rounding aside)
    assert agg["count_mae"] > 0 and agg["recall@0.5"] < 0.9  # odd tiles answer half their cells
    assert sum(sum(s["cell_hits"]) for s in samples) == sum(s["tp@0.5"] for s in samples)
