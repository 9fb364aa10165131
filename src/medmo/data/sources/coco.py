"""Any detection set in COCO json -> grounding records (generic importer).

Format: https://cocodataset.org/#format-data (object detection). Licence/access: that of
the dataset you point at; this importer adds none.

Point `raw` at a COCO json file, or at a folder holding one or more (searched in the
folder and in annotations/). Fields used:

    images       {"id", "file_name", "width", "height"}; the image is looked up as
                 file_name under the json's folder, its images/ subfolder, the parent
                 folder, the parent's images/ and the parent's <split>/ folder
    annotations  {"image_id", "category_id", "bbox": [x, y, w, h] float pixels, top-left
                 corner; "iscrowd" (1 = crowd region, not one object: skipped)}
    categories   {"id", "name"} -> box labels

One record per image with all its boxes; prompt "Detect and localize all <names> in the
image." (`target` overrides <names>). Split from the json's name (instances_val2017 ->
"val"), else "test". Counted drops: image_missing, image_without_boxes,
crowd_annotation, unknown_image / unknown_category, plus the box checks of _grounding.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, check_utf8, printable, register_source, require_path
from medmo.data.sources._grounding import check_box, detection_prompt, grounding_record, infer_split
from medmo.data.sources._qa import read_text


def find_json(raw: Path) -> list[Path]:
    """COCO json files at `raw` (a file, or a folder and its annotations/ subfolder)."""
    if raw.is_file():
        return [raw]
    files = sorted(raw.glob("*.json")) + sorted(raw.glob("annotations/*.json"))
    return [p for p in files if _looks_like_coco(p)]


def _looks_like_coco(path: Path) -> bool:
    try:
        data = json.loads(read_text(path))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "images" in data and "annotations" in data


def _entries(data: dict, key: str, required: tuple[str, ...], path: Path, drops: Drops) -> list[dict]:
    """The objects of data[key] that have the `required` fields; the others are counted."""
    entries = data.get(key) or []
    if not isinstance(entries, list):
        drops.add(f"malformed_{key}", f"{path.name}: {key} is not a list")
        return []
    good = []
    for e in entries:
        if isinstance(e, dict) and all(k in e for k in required):
            good.append(e)
        else:
            drops.add(f"malformed_{key}_entry", f"{path.name}: {printable(repr(e))} lacks one of {', '.join(required)}")
    return good


def _locate(file_name: str, json_path: Path, split: str) -> Path | None:
    here, up = json_path.parent, json_path.parent.parent
    for base in (here, here / "images", up, up / "images", up / split, up / "images" / split):
        if (base / file_name).is_file():
            return base / file_name
    return None


@register_source("coco", tasks=("grounding",), modality="other", importer=True,
                 licence="that of the dataset imported", url="https://cocodataset.org/#format-data")
def convert(raw: str | Path, drops: Drops, split: str | None = None, modality: str = "other",
            target: str | None = None, source: str = "coco") -> Iterator[Record]:
    raw = require_path(raw, "a COCO json file or a folder with one (images, annotations, categories)")
    files = find_json(raw)
    if not files:
        raise ValueError(f"{raw}: no COCO json found (a dict with 'images' and 'annotations'), "
                         "looked in the folder and its annotations/")
    for path in files:
        data = json.loads(read_text(path))
        if not (isinstance(data, dict) and "images" in data and "annotations" in data):
            raise ValueError(f"{path}: not COCO detection json (needs 'images' and 'annotations')")
        file_split = infer_split(path.stem)
        if split is not None and file_split != split:
            continue
        categories = {c["id"]: str(c["name"]) for c in _entries(data, "categories", ("id", "name"), path, drops)}
        images = {im["id"]: im for im in _entries(data, "images", ("id", "file_name", "width", "height"), path, drops)}
        per_image: dict = defaultdict(list)
        for k, ann in enumerate(data["annotations"]):
            with drops.guard(f"{path.name} annotation {k}"):
                check_utf8(ann)
                where = f"{path.name} annotation {ann.get('id', k)}"
                if ann.get("iscrowd"):
                    drops.add("crowd_annotation", where)
                    continue
                image = images.get(ann.get("image_id"))
                if image is None:
                    drops.add("unknown_image", f"{where}: image_id {ann.get('image_id')!r}")
                    continue
                if ann.get("category_id") not in categories:
                    drops.add("unknown_category", f"{where}: category_id {ann.get('category_id')!r}")
                    continue
                bbox = ann.get("bbox")
                try:
                    x, y, w, h = (float(v) for v in bbox)
                    xyxy = [x, y, x + w, y + h]
                except (TypeError, ValueError):
                    xyxy = bbox  # check_box counts it as box_malformed
                box = check_box(xyxy, image["width"], image["height"], drops, where, categories[ann["category_id"]])
                if box is not None:
                    per_image[image["id"]].append(box)
        prompt = detection_prompt(list(categories.values()), target)
        for image_id, image in sorted(images.items(), key=lambda kv: str(kv[0])):
            with drops.guard(f"{path.name} image {image_id}"):
                where = f"{path.name} image {image['file_name']}"
                boxes = per_image.get(image_id)
                if not boxes:
                    drops.add("image_without_boxes", where)
                    continue
                located = _locate(image["file_name"], path, file_split)
                if located is None:
                    drops.add("image_missing", where)
                    continue
                yield grounding_record(
                    rid=f"{source}/{file_split}/{Path(image['file_name']).stem}", source=source, split=file_split,
                    modality=modality, images=[str(located)], prompt=prompt, boxes=boxes,
                    image_size=(image["width"], image["height"]), meta={"file_name": image["file_name"]},
                )
