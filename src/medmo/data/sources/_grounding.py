"""Helpers shared by the detection/grounding converters (not a source: the leading
underscore keeps it out of the registry).

`check_box` applies one policy to every source's boxes, so "a box outside the image"
means the same everywhere, and each fix or skip is counted in `Drops` by reason:

    box_malformed          not four finite numbers                      -> box dropped
    box_outside_image      no overlap with the image                    -> box dropped
    box_degenerate         zero width or height after clamping          -> box dropped
    box_clamped_to_image   partly outside: clamped to the image, KEPT   -> counted only

`grounding_record` builds the unified record: ground truth in PIXELS with
`answer.image_size`; the assistant target in MedMO syntax on the 0-1000 grid, rendered
once through `Box.to_grid` + `format_boxes` (DESIGN.md: grid coordinates are never
stored as ground truth).

`seeded_split` gives releases that publish no split a deterministic one, by a hash of
the patient or image id (never the row order), so a re-download or another machine
gives the same split. `voc_boxes` reads one Pascal VOC XML file (BCCD, TBX11K): VOC
pixel indices are 1-based and inclusive, so <xmin>1</xmin>..<xmax>640</xmax> spans the
whole 640-px row and becomes the continuous box [0, ..., 640, ...].
"""
from __future__ import annotations

import hashlib
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

from medmo.boxes import Box, format_boxes
from medmo.data.schema import IMAGE_TOKEN, Record
from medmo.data.sources import Drops
from medmo.model.prompts import GROUND_ALL


def check_box(xyxy: Sequence[Any], width: float, height: float, drops: Drops, where: str,
              label: str | None = None) -> Box | None:
    """A pixel box clamped to the image, or None (counted in `drops`) when unusable."""
    try:
        vals = [float(v) for v in xyxy]
    except (TypeError, ValueError):
        vals = []
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        drops.add("box_malformed", f"{where}: {xyxy!r}")
        return None
    box = Box.from_list(vals, label)
    if box.x1 >= width or box.y1 >= height or box.x2 <= 0 or box.y2 <= 0:
        drops.add("box_outside_image", f"{where}: {vals} outside {width:g}x{height:g}")
        return None
    clamped = box.clamp(width, height)
    if clamped.x2 - clamped.x1 <= 0 or clamped.y2 - clamped.y1 <= 0:
        drops.add("box_degenerate", f"{where}: {vals}")
        return None
    if clamped != box:
        drops.add("box_clamped_to_image", f"{where}: {vals} -> {clamped.as_list()}")
    return clamped


def grounding_record(*, rid: str, source: str, split: str, modality: str, images: list[str],
                     prompt: str, boxes: Sequence[Box], image_size: tuple[float, float],
                     target_label: str | None = None, target_prefix: str = "",
                     meta: dict[str, Any] | None = None) -> Record:
    """A grounding Record: pixel boxes as ground truth, MedMO grid syntax as the target.

    `prompt` gets one `<image>` placeholder per image in front unless it already has them.
    `target_label` overrides the boxes' labels in the target text (one group);
    `target_prefix` is text before the boxes (e.g. "It's in the second image.").
    """
    width, height = image_size
    if prompt.count(IMAGE_TOKEN) != len(images):
        prompt = "".join(f"{IMAGE_TOKEN}\n" for _ in images) + prompt
    target = format_boxes([b.to_grid(width, height) for b in boxes], label=target_label)
    if target_prefix:
        target = f"{target_prefix} {target}"
    return Record(
        id=rid, source=source, split=split, task="grounding", modality=modality, images=list(images),
        messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": target}],
        answer={"boxes": [b.to_record() for b in boxes], "image_size": [width, height]},
        meta=dict(meta or {}),
    )


def infer_split(name: str, default: str = "test") -> str:
    """train / val / test from a file or folder name ("instances_val2017" -> "val")."""
    low = name.lower()
    for key, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if key in low:
            return split
    return default


def detection_prompt(labels: Sequence[str], target: str | None = None) -> str:
    """"Detect and localize all <target> in the image.", target defaulting to the label names."""
    if target is None:
        names = sorted(set(labels)) or ["objects"]
        target = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return GROUND_ALL.format(target=target)


def seeded_split(key: str, test_fraction: float = 0.1, salt: str = "") -> str:
    """"test" for a fixed `test_fraction` of keys, else "train": by sha256(salt/key), so the
    split depends on the id alone (not on row order, machine or Python's hash seed)."""
    digest = hashlib.sha256(f"{salt}/{key}".encode("utf-8", "surrogateescape")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def voc_boxes(path: Path, drops: Drops, default_size: tuple[int, int] | None = None
              ) -> tuple[tuple[int, int], list[Box]] | None:
    """((width, height), checked pixel boxes labelled through the shared vocabulary) of a
    Pascal VOC XML file, or None with the reason counted: xml_unreadable, size_missing (no
    <size> and no `default_size`), no_finding (no usable box). A 1-based inclusive
    <bndbox> becomes [xmin - 1, ymin - 1, xmax, ymax]; a corner missing or not a number
    is box_malformed (check_box)."""
    from medmo.data.labels import canonical_label

    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        drops.add("xml_unreadable", f"{path.name}: {e}")
        return None
    size = root.find("size")
    wh = default_size
    if size is not None and size.findtext("width") and size.findtext("height"):
        wh = (int(float(size.findtext("width"))), int(float(size.findtext("height"))))
    if wh is None:
        drops.add("size_missing", path.name)
        return None
    boxes = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        corners = [obj.findtext(f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax")]
        try:
            x1, y1, x2, y2 = (float(v) for v in corners)
            xyxy: list = [x1 - 1, y1 - 1, x2, y2]
        except (TypeError, ValueError):
            xyxy = corners
        box = check_box(xyxy, *wh, drops, f"{path.name} {name}", canonical_label(name))
        if box is not None:
            boxes.append(box)
    if not boxes:
        drops.add("no_finding", path.name)
        return None
    return wh, sorted(boxes, key=lambda b: b.label or "")
