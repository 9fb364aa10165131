"""VinDr-CXR chest X-ray findings (radiologists' boxes) -> grounding records.

Release: https://physionet.org/content/vindr-cxr/1.0.0/ (Nguyen et al., "VinDr-CXR: An
open dataset of chest X-rays with radiologist's annotations", Sci. Data 9, 429, 2022).
Licence/access: PhysioNet Restricted Health Data License 1.5.0 (credentialed account,
signed data use agreement; no redistribution); cite the paper.

Layout (PhysioNet 1.0.0; the Kaggle "VinBigData" copy has the same columns plus class_id):

    annotations/annotations_train.csv   image_id,rad_id,class_name,x_min,y_min,x_max,y_max
    annotations/annotations_test.csv    same columns (rad_id optional here)
    train/<image_id>.dicom              15,000 scans;  test/<image_id>.dicom  3,000 scans

Coordinates: float pixels of the DICOM's stored matrix (x = column, y = row, before any
resizing or windowing), corners (x_min, y_min) and (x_max, y_max) used as continuous
box corners. Image sizes vary, so each DICOM header's Columns x Rows is read (not the
pixels); a row whose DICOM is absent is counted as image_missing. "No finding" rows have
empty coordinates and give no box (counted as no_finding_row).

Several radiologists: each TRAINING image was read by three radiologists (rad_id
R1..R17), independently. medmo keeps every reader's findings and merges duplicates: per
image and class, a box joins the first group whose mean box it overlaps with IoU >= 0.5
and the group's box is the mean of its members (a simplified weighted-box fusion with
equal weights); meta["readers"] says how many boxes each merged box came from, so a
user can keep only boxes two readers agree on. The TEST labels are the consensus of
five radiologists, one set per image, kept as published.

One record per (image, class), prompt "Locate the <class> in the image. ..." and box
labels from the shared vocabulary (medmo.data.labels: "Nodule/Mass" -> "Nodule",
"Pulmonary fibrosis" -> "Fibrosis", "ILD" -> "Interstitial lung disease"); the
release's class name stays in meta["class_name"]. Split: the release's train / test.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from medmo.boxes import Box, iou
from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, check_utf8, csv_rows, register_source, require_path
from medmo.data.sources._grounding import check_box, grounding_record
from medmo.imaging.dicom import header_size
from medmo.model.prompts import GROUND_TARGET

SPLITS = ("train", "test")
COLUMNS = ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")
MERGE_IOU = 0.5


def merge_readers(boxes: list[Box], min_iou: float = MERGE_IOU) -> list[tuple[Box, int]]:
    """[(mean box, members)]: each box joins the first group whose mean it overlaps with IoU >= min_iou."""
    groups: list[list[Box]] = []
    means: list[Box] = []
    for box in boxes:
        k = next((i for i, m in enumerate(means) if iou(m, box) >= min_iou), None)
        if k is None:
            groups.append([box])
            means.append(box)
            continue
        groups[k].append(box)
        n = len(groups[k])
        means[k] = Box(*(sum(v) / n for v in zip(*(b.as_list() for b in groups[k]))), box.label)
    return [(m, len(g)) for m, g in zip(means, groups)]


def _rows(csv_path: Path, drops: Drops) -> Iterator[tuple[str, dict]]:
    with csv_path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: columns {missing} missing; expected VinDr-CXR's "
                             "image_id,rad_id,class_name,x_min,y_min,x_max,y_max")
        for line, row in enumerate(csv_rows(reader, csv_path.name, drops), 2):
            yield f"{csv_path.name}:{line}", row


@register_source("vindr_cxr", tasks=("grounding",), modality="xray",
                 licence="PhysioNet Restricted Health Data License 1.5.0",
                 url="https://physionet.org/content/vindr-cxr/1.0.0/", splits={"train": 15000, "test": 3000})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the VinDr-CXR folder (annotations/annotations_{train,test}.csv, train/, test/)")
    notes = raw / "annotations" if (raw / "annotations").is_dir() else raw
    files = {s: notes / f"annotations_{s}.csv" for s in SPLITS if (notes / f"annotations_{s}.csv").is_file()}
    if not files:
        raise FileNotFoundError(f"{raw}: no annotations/annotations_train.csv or annotations_test.csv (VinDr-CXR)")
    for part, csv_path in files.items():
        if split is not None and part != split:
            continue
        groups: dict[tuple[str, str], list[Box]] = defaultdict(list)
        for where, row in _rows(csv_path, drops):
            with drops.guard(where):
                check_utf8(row)
                name = row["class_name"].strip()
                if name.lower() == "no finding":
                    drops.add("no_finding_row", where)
                    continue
                image_id = row["image_id"].strip()
                groups[(image_id, name)].append([row[c] for c in COLUMNS[2:]])
        sizes: dict[str, tuple[int, int] | None] = {}
        for (image_id, name), corners in sorted(groups.items()):
            with drops.guard(f"{csv_path.name} {image_id} {name}"):
                dicom = raw / part / f"{image_id}.dicom"
                if image_id not in sizes:
                    sizes[image_id] = header_size(dicom) if dicom.is_file() else None
                if sizes[image_id] is None:
                    drops.add("image_missing", f"{part}/{image_id}.dicom")
                    continue
                width, height = sizes[image_id]
                label = canonical_label(name)
                boxes = [b for xyxy in corners
                         if (b := check_box(xyxy, width, height, drops, f"{image_id} {name}", label)) is not None]
                if not boxes:
                    continue
                merged = merge_readers(boxes) if part == "train" else [(b, 1) for b in boxes]
                yield grounding_record(
                    rid=f"vindr_cxr/{part}/{image_id}/{label.lower().replace(' ', '_')}", source="vindr_cxr",
                    split=part, modality="xray", images=[str(dicom)], prompt=GROUND_TARGET.format(target=label.lower()),
                    boxes=[b for b, _ in merged], image_size=(width, height),
                    meta={"image_id": image_id, "class_name": name, "readers": [n for _, n in merged]},
                )
