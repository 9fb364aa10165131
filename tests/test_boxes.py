"""Box type, grid conversion, IoU/GIoU, matching, formatting and parsing."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from medmo.boxes import (
    Box, format_boxes, giou, iou, match_boxes, pairwise_giou, pairwise_iou, parse_boxes, set_iou,
)

IOU_CASES = [
    # (a, b, iou, giou)
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0, 1.0),  # identical
    ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150, 50 / 150),  # half overlap, hull == union
    ([0, 0, 10, 10], [20, 0, 30, 10], 0.0, -1 / 3),  # disjoint: hull 300, union 200
    ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100, 4 / 100),  # contained
    ([0, 0, 0, 0], [0, 0, 10, 10], 0.0, 0.0),  # degenerate box has no area
]


@pytest.mark.parametrize("a,b,want_iou,want_giou", IOU_CASES)
def test_iou_and_giou_table(a, b, want_iou, want_giou):
    assert iou(Box.from_list(a), Box.from_list(b)) == pytest.approx(want_iou)
    assert giou(Box.from_list(a), Box.from_list(b)) == pytest.approx(want_giou)


def test_pairwise_is_vectorized_and_matches_scalar():
    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 100, (7, 2, 2)), axis=1).transpose(0, 2, 1).reshape(7, 4)[:, [0, 2, 1, 3]]
    b = a[::-1] + 3
    m = pairwise_iou(a, b)
    assert m.shape == (7, 7)
    assert m[2, 4] == pytest.approx(iou(Box.from_list(a[2]), Box.from_list(b[4])))
    assert pairwise_giou(a, b).min() >= -1.0


def test_grid_round_trip():
    b = Box(100, 50, 300, 200)
    g = b.to_grid(400, 250)
    assert g.as_list() == [250, 200, 750, 800]
    assert g.from_grid(400, 250).as_list() == pytest.approx([100, 50, 300, 200])


def test_match_is_one_to_one_and_set_iou_penalizes_extras():
    gt = [Box(0, 0, 10, 10), Box(50, 50, 60, 60)]
    pred = [Box(50, 50, 60, 60), Box(0, 0, 10, 10), Box(0, 0, 10, 10)]
    pairs = match_boxes(pred, gt)
    assert sorted((p, g) for p, g, _ in pairs) in ([(0, 1), (1, 0)], [(0, 1), (2, 0)])
    assert set_iou(pred, gt) == pytest.approx(2 / 3)  # two perfect matches, one extra
    assert set_iou([], gt) == 0.0
    assert set_iou([], []) == 1.0


PARSE_CASES = [
    # (text, box_format, expected pixel boxes on a 200x100 image, expected labels)
    ("Fractures <box>[[156, 516, 231, 607], [240, 529, 296, 581]]</box>", "grid",
     [[31.2, 51.6, 46.2, 60.7], [48.0, 52.9, 59.2, 58.1]], ["Fractures", "Fractures"]),
    ('```json\n[{"bbox_2d": [100, 200, 300, 400], "label": "nodule"}]\n```', "grid",
     [[20, 20, 60, 40]], ["nodule"]),  # Qwen3-VL JSON in a fence
    ('[{"bbox_2d": [10, 20, 30, 40], "label": "x"}]', "pixels", [[10, 20, 30, 40]], ["x"]),  # bare JSON
    ("<|object_ref_start|>Skin<|object_ref_end|><|box_start|>(10,20),(50,60)<|box_end|>", "pixels",
     [[10, 20, 50, 60]], ["Skin"]),  # Qwen2-VL
    ("The box is [30, 40, 10, 20].", "pixels", [[10, 20, 30, 40]], [None]),  # reversed corners normalized
    ("[0.1, 0.2, 0.5, 0.6]", "grid", [[20, 20, 100, 60]], [None]),  # fractions of the image
    ("[0, 0, 5000, 5000]", "pixels", [[0, 0, 200, 100]], [None]),  # clamped to the image
    ("no boxes here", "grid", [], []),  # garbage -> nothing
    ("<box>[[1, 2, 3]]</box>", "grid", [], []),  # malformed: three numbers
    ("[nan, 1, 2, 3]", "grid", [], []),
]


@pytest.mark.parametrize("text,fmt,want,labels", PARSE_CASES)
def test_parse_boxes_table(text, fmt, want, labels):
    got = parse_boxes(text, 200, 100, box_format=fmt)
    assert [b.as_list() for b in got] == [pytest.approx(w) for w in want]
    assert [b.label for b in got] == labels


def test_format_then_parse_round_trip():
    boxes = [Box(10, 20, 30, 40, "cell"), Box(500, 600, 700, 800, "cell")]
    text = format_boxes(boxes)
    assert text == "cell <box>[[10, 20, 30, 40], [500, 600, 700, 800]]</box>"
    assert [b.as_list() for b in parse_boxes(text)] == [b.as_list() for b in boxes]


def test_bad_box_format_is_a_clear_error():
    with pytest.raises(ValueError, match="grid"):
        parse_boxes("[1, 2, 3, 4]", box_format="pixel")


coord = st.integers(min_value=0, max_value=1000)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(coord, coord, coord, coord), min_size=1, max_size=5))
def test_property_format_parse_round_trip(quads):
    boxes = [Box.from_list(q, "lesion") for q in quads]
    parsed = parse_boxes(format_boxes(boxes))
    assert [b.as_list() for b in parsed] == [b.as_list() for b in boxes]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.integers(1, 4000), st.integers(1, 4000))
def test_property_parse_never_raises_and_stays_in_image(text, w, h):
    for fmt in ("grid", "pixels"):
        for b in parse_boxes(text, w, h, box_format=fmt):
            assert 0 <= b.x1 <= b.x2 <= w and 0 <= b.y1 <= b.y2 <= h
            assert all(math.isfinite(v) for v in b.as_list())


@settings(max_examples=200, deadline=None)
@given(st.tuples(coord, coord, coord, coord), st.integers(10, 3000), st.integers(10, 3000))
def test_property_pixel_grid_round_trip_within_rounding(q, w, h):
    px = Box.from_list(q).from_grid(w, h)
    assert px.to_grid(w, h).as_list() == pytest.approx(Box.from_list(q).as_list(), abs=1)


FRAGMENTS = ["<box>", "</box>", "[[", "]]", "[", "]", ",", "(", ")", "<|box_start|>", "<|box_end|>",
             '{"bbox_2d": ', '"label": ', "}", "```json", "```", "1e308", "-5", "0.5", "999", "nan", " "]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.integers(-10**6, 10**6).map(str), max_size=40))
def test_property_parse_never_raises_on_box_like_garbage(parts):
    for b in parse_boxes("".join(parts), 336, 336, box_format="pixels"):
        assert 0 <= b.x1 <= b.x2 <= 336 and 0 <= b.y1 <= b.y2 <= 336


def test_unclamped_raw_parse_keeps_coordinates_as_written():
    text = "[0.1, 0.2, 0.5, 0.6] then [0, 0, 5000, 400]"
    assert [b.as_list() for b in parse_boxes(text, 200, 100, "pixels", clamp=False, fractions=False)] == [
        [0.1, 0.2, 0.5, 0.6], [0, 0, 5000, 400]]
