"""Bacteria detection (MedMO's "Bacteria" grounding set), on any detection release the
generic importers read: `--data` points at a COCO json (or a folder with one), a YOLO
folder (images/ + labels/), or a folder of instance masks. medmo ships no bacteria
release (none is in shared/data), so --data is required.

One item per image: "Detect and localize all bacteria in the image." Coordinates: grid
(MedMO/Qwen3-VL), compared in pixels; score = set IoU (every predicted box matched one
to one, extra and missing boxes cost).
"""
from pathlib import Path

from medmo.data.sources import get_source
from medmo.data.sources.coco import find_json
from medmo.eval.benchmarks._grounding import register_grounding

EXPECTED = "a COCO json (or folder with one), a YOLO folder (images/ + labels/), or a folder of instance masks"


def detect_format(path: Path) -> str:
    """"coco", "yolo" or "masks" for a detection release at `path`."""
    if path.is_file() or find_json(path):
        return "coco"
    if (path / "labels").is_dir() or any(p.name != "classes.txt" for p in path.glob("*.txt")):
        return "yolo"
    return "masks"


def _load(path: Path, drops):
    fmt = detect_format(path)
    kwargs = {"label": "bacterium", "target": "bacteria"} if fmt == "masks" else {"target": "bacteria"}
    return list(get_source(fmt).convert(path, drops, modality="microscopy", source="bacteria", **kwargs))


register_grounding(
    "bacteria", load_records=_load, expected=EXPECTED,
    description="bacteria detection on a user-supplied COCO/YOLO/masks release; set IoU",
    size_checked="unverified: MedMO's Bacteria set is not published",
)
