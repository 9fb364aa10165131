"""Synthetic cell data: deterministic from the seed, boxes tight around the drawn cells."""
import numpy as np
import pytest
from PIL import Image

from medmo.boxes import parse_boxes, pairwise_iou
from medmo.data.schema import read_records
from medmo.data.synthetic import (COUNT_PROMPT, PRESENCE_PROMPT, draw_cells, make_cell_records,
                                  make_cell_vqa_records, write_cell_set)
from medmo.model.prompts import GROUND_ALL_CELLS


def test_same_seed_same_records_and_pixels(tmp_path):
    a = make_cell_records(5, tmp_path / "a", seed=3, image_size=96, max_cells=3)
    b = make_cell_records(5, tmp_path / "b", seed=3, image_size=96, max_cells=3)
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    for r in a:
        assert (tmp_path / "a" / r.images[0]).read_bytes() == (tmp_path / "b" / r.images[0]).read_bytes()


def test_prefix_stable_and_seeds_differ(tmp_path):
    few = make_cell_records(2, tmp_path / "few", seed=0, image_size=64)
    many = make_cell_records(4, tmp_path / "many", seed=0, image_size=64)
    other = make_cell_records(2, tmp_path / "other", seed=1, image_size=64)
    assert [r.answer for r in few] == [r.answer for r in many[:2]]  # record i does not depend on n
    assert [r.answer for r in few] != [r.answer for r in other]


def test_boxes_are_tight_around_bright_pixels():
    img, boxes = draw_cells(np.random.default_rng(7), 128, 1)
    gray = np.asarray(img.convert("L"), dtype=float)
    ys, xs = np.nonzero(gray > 90)  # cells are >= 120 (x tint); background 20-50 + noise
    (b,) = boxes
    # bright pixels lie in the box (noise may add a stray pixel: allow 1%) and span most of it
    inside = (xs + 0.5 >= b.x1 - 1) & (xs + 0.5 <= b.x2 + 1) & (ys + 0.5 >= b.y1 - 1) & (ys + 0.5 <= b.y2 + 1)
    assert inside.mean() > 0.99
    assert xs.max() - xs.min() > 0.85 * (b.x2 - b.x1) and ys.max() - ys.min() > 0.85 * (b.y2 - b.y1)


@pytest.mark.parametrize("size, n", [(64, 3), (128, 1), (224, 4)])
def test_boxes_are_the_painted_pixels_box_in_whole_pixels(size, n):
    """As a mask gives it: integer pixel edges, and each edge row / column holds a cell pixel
    (the noise-free image is compared: cells are painted before the noise)."""
    from medmo.data.synthetic import DEMO_CELLS, CellStyle

    for seed in range(10):
        _, boxes = draw_cells(np.random.default_rng(seed), size, n, DEMO_CELLS)
        clean, same = draw_cells(np.random.default_rng(seed), size, n, CellStyle(
            min_radius=DEMO_CELLS.min_radius, max_radius=DEMO_CELLS.max_radius, noise=0.0))
        assert boxes == same
        cells = np.asarray(clean.convert("L"), dtype=float) > 60  # background <= 50 without noise
        for b in boxes:
            assert all(isinstance(v, int) for v in (b.x1, b.y1, b.x2, b.y2))
            patch = cells[b.y1:b.y2, b.x1:b.x2]
            assert patch[0].any() and patch[-1].any() and patch[:, 0].any() and patch[:, -1].any()


def test_grounding_record_round_trips_through_the_grid(tmp_path):
    (rec,) = make_cell_records(1, tmp_path, seed=5, image_size=160, min_cells=3, max_cells=3)
    assert rec.task == "grounding" and rec.prompt == "<image>" + GROUND_ALL_CELLS
    assert rec.target.startswith("cell <box>[[") and rec.target.endswith("]]</box>")
    w, h = rec.answer["image_size"]
    truth = [b["bbox"] for b in rec.answer["boxes"]]
    parsed = parse_boxes(rec.target, w, h)
    assert len(parsed) == len(truth) == rec.meta["n_cells"]
    # grid rounding moves each side by at most half a grid step (0.08 px at 160 px)
    assert np.allclose([p.as_list() for p in parsed], truth, atol=160 / 1000)
    assert Image.open(tmp_path / rec.images[0]).size == (160, 160)


def test_targets_list_boxes_left_to_right(tmp_path):
    """The text and answer["boxes"] agree, sorted by x1 then y1 (the first coordinate a box emits)."""
    recs = make_cell_records(30, tmp_path, seed=4, image_size=64, min_cells=2, max_cells=3)
    for r in recs:
        truth = [tuple(b["bbox"]) for b in r.answer["boxes"]]
        assert truth == sorted(truth, key=lambda b: (b[0], b[1]))
        assert [tuple(round(v) for v in p.as_list()) for p in parse_boxes(r.target, 64, 64)] == truth
    # not vacuous: some image has its leftmost cell below another cell (reading order would differ)
    firsts_below = [r.answer["boxes"][0]["bbox"][1] > min(b["bbox"][1] for b in r.answer["boxes"]) for r in recs]
    assert any(firsts_below)


def test_cells_never_overlap(tmp_path):
    recs = make_cell_records(20, tmp_path, seed=2, image_size=128, max_cells=4)
    for r in recs:
        boxes = np.array([b["bbox"] for b in r.answer["boxes"]])
        assert ((boxes[:, :2] >= 0) & (boxes[:, 2:] <= 128)).all()
        # ellipses do not touch; their boxes may overlap only a little
        iou = pairwise_iou(boxes, boxes) - np.eye(len(boxes))
        assert iou.max(initial=0) < 0.5


def test_vqa_answers_match_the_drawn_cells(tmp_path):
    recs = make_cell_vqa_records(12, tmp_path, seed=0, image_size=64, min_cells=0, max_cells=2)
    kinds = {r.meta["question_type"] for r in recs}
    assert kinds == {"count", "presence"}
    for r in recs:
        n = r.meta["n_cells"]
        if r.meta["question_type"] == "count":
            assert COUNT_PROMPT in r.prompt and r.answer == {"text": str(n), "closed": True}
        else:
            assert PRESENCE_PROMPT in r.prompt and r.answer["text"] == ("yes" if n else "no")
    assert any(r.meta["n_cells"] == 0 for r in recs)  # presence has negatives


def test_write_cell_set_resolves_images_next_to_the_file(tmp_path):
    path = write_cell_set(tmp_path / "set", "train", 3, n_vqa=2, image_size=64)
    recs = read_records(path)
    assert [r.task for r in recs] == ["grounding"] * 3 + ["vqa"] * 2
    assert all((path.parent / r.images[0]).exists() for r in recs)


def test_bad_cell_range_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="min_cells"):
        make_cell_records(1, tmp_path, min_cells=3, max_cells=2)
