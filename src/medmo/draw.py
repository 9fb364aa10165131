"""Draw boxes with labels on an image, readable at any image size (Pillow only).

`draw_boxes(image, boxes)` returns a NEW RGB image; the input is never modified. Boxes are
in PIXELS of that image (convert grid answers with `medmo.boxes.parse_boxes` first).

Readability: line width and font size scale with the image's shorter side, with floors
so a 64-px thumbnail still shows a legible label; a label sits on a filled background in
the box's colour, above the box when there is room, otherwise inside it, and always
within the image; text is black or white, whichever contrasts with the background.
Colours: one fixed colour for every box (the default, "red"; callers drawing
predictions against ground truth pass two colours), or `color=None` for a distinct colour
per label from a colour-blind-friendly palette (what `medmo infer` and the API use).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from PIL import Image, ImageColor, ImageDraw, ImageFont

from medmo.boxes import Box

# Okabe-Ito plus a few high-contrast extras: distinguishable for colour-blind readers.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
           "#FF1744", "#00E5FF", "#76FF03", "#FFFFFF", "#AA00FF")


def label_colors(labels: Sequence[str | None]) -> dict[str | None, str]:
    """A distinct palette colour per label, in order of first appearance (stable)."""
    colors: dict[str | None, str] = {}
    for label in labels:
        if label not in colors:
            colors[label] = PALETTE[len(colors) % len(PALETTE)]
    return colors


def _text_color(fill: str) -> str:
    r, g, b = ImageColor.getrgb(fill)[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "white"


def draw_boxes(image: Image.Image, boxes: Sequence[Box], color: str | Mapping[str, str] | None = "red",
               width: int | None = None, labels: bool = True) -> Image.Image:
    """A copy of `image` (as RGB) with `boxes` drawn and, when `labels`, their labels.

    color: one colour for all boxes, a {label: colour} mapping, or None for a distinct
    palette colour per label. width: line width in pixels (default: scaled to the image).
    A box without a label gets its 1-based index as its label so boxes stay tellable apart.
    """
    out = image.convert("RGB")  # a new image, also when the input is already RGB
    w, h = out.size
    short = min(w, h)
    line = width if width is not None else max(2, round(short / 200))
    font = ImageFont.load_default(size=max(10, round(short / 32)))
    if color is None:
        colors = label_colors([b.label for b in boxes])
    elif isinstance(color, Mapping):
        fallback = label_colors([b.label for b in boxes])
        colors = {b.label: color.get(b.label or "", fallback[b.label]) for b in boxes}
    else:
        colors = {b.label: color for b in boxes}
    draw = ImageDraw.Draw(out)
    for box in boxes:
        b = box.clamp(w - 1, h - 1)
        draw.rectangle([b.x1, b.y1, max(b.x2, b.x1 + 1), max(b.y2, b.y1 + 1)], outline=colors[box.label], width=line)
    if labels:
        for i, box in enumerate(boxes, 1):
            _draw_label(draw, box.clamp(w - 1, h - 1), box.label or str(i), colors[box.label], font, (w, h))
    return out


def _draw_label(draw: ImageDraw.ImageDraw, box: Box, text: str, fill: str, font, size: tuple[int, int]) -> None:
    w, h = size
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(1, round((bottom - top) / 5))
    tw, th = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(max(box.x1, 0), max(w - tw, 0))
    y = box.y1 - th if box.y1 - th >= 0 else min(box.y1, max(h - th, 0))  # above, else inside
    draw.rectangle([x, y, x + tw, y + th], fill=fill)
    draw.text((x + pad - left, y + pad - top), text, fill=_text_color(fill), font=font)
