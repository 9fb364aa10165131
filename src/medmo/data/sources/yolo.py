"""Any detection set in YOLO txt format + an image folder -> grounding records (generic importer).

Format: https://docs.ultralytics.com/datasets/detect/ (one .txt per image, one line per
object: `class cx cy w h`, centre and size as fractions of the image). Licence/access:
that of the dataset you point at.

Point `raw` at the dataset folder. Layouts understood:

    images/<split>/x.jpg + labels/<split>/x.txt     (Ultralytics; split = train/val/test)
    images/x.jpg + labels/x.txt                      (flat; split "test")
    x.jpg + x.txt side by side                       (darknet; split "test")

Class names come from data.yaml / dataset.yaml (`names:` list or {id: name}), else
classes.txt / obj.names (one per line), else "class_<k>". Image sizes are read from the
image headers (Pillow opens lazily, so this is cheap) to turn fractions into pixels.

One record per image with all its boxes; prompt "Detect and localize all <names> in the
image." (`target` overrides <names>). Counted drops: image_missing (a label file with no
image), image_unreadable, image_without_boxes (an image with no or an empty label file),
malformed_line, unknown_class, plus the box checks of _grounding.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import yaml
from PIL import Image, UnidentifiedImageError

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._grounding import check_box, detection_prompt, grounding_record, infer_split

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def class_names(root: Path) -> dict[int, str]:
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            names = (yaml.safe_load((root / name).read_text()) or {}).get("names")
            if isinstance(names, list):
                return {i: str(n) for i, n in enumerate(names)}
            if isinstance(names, dict):
                return {int(k): str(v) for k, v in names.items()}
    for name in ("classes.txt", "obj.names"):
        if (root / name).is_file():
            return {i: n.strip() for i, n in enumerate((root / name).read_text().splitlines()) if n.strip()}
    return {}


def _pairs(root: Path) -> Iterator[tuple[Path, Path | None, str]]:
    """(label file, image or None, split) for every label file and every unlabelled image."""
    if (root / "labels").is_dir():
        label_dirs = [(d, root / "images" / d.name, d.name) for d in sorted((root / "labels").iterdir()) if d.is_dir()]
        if not label_dirs:
            label_dirs = [(root / "labels", root / "images", "test")]
    else:
        label_dirs = [(root, root, "test")]
    for label_dir, image_dir, split_name in label_dirs:
        split = infer_split(split_name)
        images = {p.stem: p for p in sorted(image_dir.glob("*")) if p.suffix.lower() in IMAGE_EXTS}
        for txt in sorted(label_dir.glob("*.txt")):
            if txt.name in ("classes.txt",):
                continue
            yield txt, images.pop(txt.stem, None), split
        for image in images.values():
            yield image.with_suffix(".txt"), image, split


@register_source("yolo", tasks=("grounding",), modality="other", importer=True,
                 licence="that of the dataset imported", url="https://docs.ultralytics.com/datasets/detect/")
def convert(raw: str | Path, drops: Drops, split: str | None = None, modality: str = "other",
            target: str | None = None, source: str = "yolo") -> Iterator[Record]:
    raw = require_path(raw, "a YOLO dataset folder (images/ + labels/, or images with .txt beside them)")
    if not raw.is_dir():
        raise ValueError(f"{raw}: expected a YOLO dataset folder, not a file")
    names = class_names(raw)
    found_any = False
    for txt, image, item_split in _pairs(raw):
        with drops.guard(str(txt)):
            found_any = True
            if split is not None and item_split != split:
                continue
            where = str(txt.relative_to(raw))
            if image is None:
                drops.add("image_missing", where)
                continue
            lines = [ln.split() for ln in txt.read_text().splitlines() if ln.strip()] if txt.is_file() else []
            if not lines:
                drops.add("image_without_boxes", str(image.relative_to(raw)))
                continue
            try:
                with Image.open(image) as im:
                    width, height = im.size
            except (UnidentifiedImageError, OSError) as e:
                drops.add("image_unreadable", f"{image}: {e}")
                continue
            boxes = []
            for n, parts in enumerate(lines, 1):
                try:
                    cls = int(parts[0])
                    cx, cy, w, h = (float(v) for v in parts[1:5])
                except (ValueError, IndexError):
                    drops.add("malformed_line", f"{where}:{n}: {' '.join(parts)}")
                    continue
                if names and cls not in names:
                    drops.add("unknown_class", f"{where}:{n}: class {cls}")
                    continue
                xyxy = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
                box = check_box(xyxy, width, height, drops, f"{where}:{n}", names.get(cls, f"class_{cls}"))
                if box is not None:
                    boxes.append(box)
            if not boxes:
                drops.add("image_without_boxes", f"{image.relative_to(raw)}: every box dropped")
                continue
            labels = list(names.values()) or [b.label for b in boxes]
            yield grounding_record(
                rid=f"{source}/{item_split}/{image.stem}", source=source, split=item_split, modality=modality,
                images=[str(image)], prompt=detection_prompt(labels, target), boxes=boxes, image_size=(width, height),
                meta={"label_file": where},
            )
    if not found_any:
        raise ValueError(f"{raw}: no YOLO label files (*.txt) or images found; expected images/ + labels/")
