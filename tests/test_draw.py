"""draw_boxes: a new image, boxes where they belong, labels on backgrounds, colours per label."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medmo.boxes import Box
from medmo.draw import PALETTE, draw_boxes, label_colors


def _gray(w: int, h: int) -> Image.Image:
    return Image.new("RGB", (w, h), (128, 128, 128))


def _changed(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.any(np.asarray(a) != np.asarray(b), axis=-1)


def test_returns_new_image_and_leaves_input_untouched():
    img = _gray(100, 80)
    before = np.asarray(img).copy()
    out = draw_boxes(img, [Box(10, 10, 50, 50, "lesion")])
    assert out is not img and out.size == img.size and out.mode == "RGB"
    assert np.array_equal(np.asarray(img), before)


def test_box_outline_drawn_at_its_pixels_in_the_given_colour():
    img = _gray(200, 200)
    out = np.asarray(draw_boxes(img, [Box(50, 60, 150, 170)], color="red", labels=False))
    assert tuple(out[60, 100]) == (255, 0, 0)   # top edge
    assert tuple(out[170, 100]) == (255, 0, 0)  # bottom edge
    assert tuple(out[115, 50]) == (255, 0, 0)   # left edge
    assert tuple(out[115, 100]) == (128, 128, 128)  # inside stays untouched
    assert tuple(out[10, 10]) == (128, 128, 128)    # outside too


def test_label_has_a_filled_background_above_the_box():
    img = _gray(400, 400)
    plain = draw_boxes(img, [Box(100, 200, 300, 300, "nodule")], color="#0072B2", labels=False)
    labelled = draw_boxes(img, [Box(100, 200, 300, 300, "nodule")], color="#0072B2")
    diff = _changed(plain, labelled)
    ys, xs = np.nonzero(diff)
    assert ys.max() < 200 and xs.min() >= 100  # the label lies above the box, from its left edge
    band = np.asarray(labelled)[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    assert (np.all(band == (0, 0x72, 0xB2), axis=-1)).mean() > 0.4  # mostly background colour
    assert np.any(np.all(band == (255, 255, 255), axis=-1))  # white text on a dark background


def test_label_of_a_box_at_the_top_edge_goes_inside_and_stays_in_the_image():
    img = _gray(120, 120)
    out = draw_boxes(img, [Box(90, 0, 119, 40, "a-rather-long-label")], color="red")
    assert out.size == (120, 120)
    assert _changed(img, out)[0:5, :].any()  # drawn at the top, not cut off above


@pytest.mark.parametrize("size", [(32, 32), (64, 48), (3000, 2000)])
def test_scales_with_image_size(size):
    # tiny and huge images: lines stay visible, labels keep a legible size
    img = _gray(*size)
    w, h = size
    out = draw_boxes(img, [Box(w * 0.2, h * 0.4, w * 0.8, h * 0.9, "x")], color="red", labels=False)
    edge = np.all(np.asarray(out)[:, w // 2] == (255, 0, 0), axis=-1)
    assert edge.sum() >= 2 * max(2, round(min(w, h) / 200))  # top and bottom lines, scaled width


def test_distinct_colour_per_label_when_color_is_none():
    colors = label_colors(["a", "b", "a", None, "c"])
    assert list(colors) == ["a", "b", None, "c"]
    assert len(set(colors.values())) == 4
    img = _gray(300, 300)
    out = np.asarray(draw_boxes(img, [Box(10, 50, 100, 100, "a"), Box(150, 150, 290, 290, "b")], color=None,
                                labels=False))
    from PIL import ImageColor
    assert tuple(out[50, 50]) == ImageColor.getrgb(PALETTE[0])
    assert tuple(out[150, 200]) == ImageColor.getrgb(PALETTE[1])


def test_colour_mapping_and_grayscale_input():
    img = Image.new("L", (100, 100), 0)
    out = np.asarray(draw_boxes(img, [Box(10, 10, 90, 90, "gt")], color={"gt": "lime"}, labels=False))
    assert tuple(out[10, 50]) == (0, 255, 0)


def test_no_boxes_is_a_plain_copy_and_degenerate_boxes_do_not_crash():
    img = _gray(50, 50)
    assert np.array_equal(np.asarray(draw_boxes(img, [])), np.asarray(img))
    draw_boxes(img, [Box(10, 10, 10, 10), Box(-5, -5, 500, 500, "outside")])
