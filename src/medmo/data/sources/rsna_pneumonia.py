"""RSNA Pneumonia Detection Challenge (lung opacity boxes) -> grounding records.

Release: https://www.kaggle.com/c/rsna-pneumonia-detection-challenge (Shih et al.,
"Augmenting the NIH Chest Radiograph Dataset with Expert Annotations of Possible
Pneumonia", Radiology: AI 2019). Licence/access: Kaggle competition data, accepted rules
required; non-commercial research use, cite the paper.

Layout (the competition's stage 2 files):

    stage_2_train_labels.csv      patientId,x,y,width,height,Target  (one row per box;
                                  Target 0 rows have empty x..height: no opacity)
    stage_2_detailed_class_info.csv  patientId,class  (not needed: Target says it)
    stage_2_train_images/<patientId>.dcm   1024x1024 DICOM

Coordinates: float pixels of the DICOM, (x, y) the top-left corner, width/height the
size: xywh -> [x, y, x + width, y + height]. The size is read from each DICOM header
(1024x1024 in the release); a row whose DICOM is absent is counted as image_missing.

One record per image with all of its boxes: "Locate the pneumonia in the image. ...",
label "Pneumonia" (the boxes mark lung opacities suggestive of pneumonia). Target 0
images give no record (counted as no_finding). Split: the challenge's test labels are
not public, so medmo splits stage_2_train by a seeded hash of patientId (10% "test").
The images are a subset of NIH ChestX-ray14: before evaluating on the NIH box
benchmark, run `medmo data overlap` on the mix (it matches images by content).
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, check_utf8, csv_rows, register_source, require_path
from medmo.data.sources._grounding import check_box, grounding_record, seeded_split
from medmo.imaging.dicom import header_size
from medmo.model.prompts import GROUND_TARGET

CSV_NAME = "stage_2_train_labels.csv"
COLUMNS = ("patientId", "x", "y", "width", "height", "Target")


@register_source("rsna_pneumonia", tasks=("grounding",), modality="xray",
                 licence="Kaggle competition rules (non-commercial)",
                 url="https://www.kaggle.com/c/rsna-pneumonia-detection-challenge", splits={"all": 6012})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, f"the RSNA Pneumonia folder or its {CSV_NAME}")
    csv_path = raw / CSV_NAME if raw.is_dir() else raw
    require_path(csv_path, f"{CSV_NAME} (RSNA Pneumonia boxes)")
    folder = csv_path.parent
    boxes: dict[str, list] = defaultdict(list)
    negatives: set[str] = set()
    with csv_path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: columns {missing} missing; expected {','.join(COLUMNS)}")
        for line, row in enumerate(csv_rows(reader, csv_path.name, drops), 2):
            where = f"{csv_path.name}:{line}"
            with drops.guard(where):
                check_utf8(row)
                pid = row["patientId"].strip()
                if row["Target"].strip() == "0":
                    negatives.add(pid)
                    continue
                if row["Target"].strip() != "1":
                    drops.add("malformed_row", f"{where}: Target {row['Target']!r}")
                    continue
                try:
                    x, y, w, h = (float(row[c]) for c in COLUMNS[1:5])
                    boxes[pid].append([x, y, x + w, y + h])
                except ValueError:
                    boxes[pid].append([row[c] for c in COLUMNS[1:5]])  # check_box counts it as box_malformed
    for pid in sorted(negatives - set(boxes)):
        drops.add("no_finding", pid)
    label = canonical_label("pneumonia")
    for pid, corners in sorted(boxes.items()):
        with drops.guard(f"{csv_path.name} {pid}"):
            rec_split = seeded_split(pid, salt="rsna_pneumonia")
            if split is not None and rec_split != split:
                continue
            dicom = folder / "stage_2_train_images" / f"{pid}.dcm"
            if not dicom.is_file():
                drops.add("image_missing", str(dicom.relative_to(folder)))
                continue
            width, height = header_size(dicom)
            kept = [b for xyxy in corners if (b := check_box(xyxy, width, height, drops, pid, label)) is not None]
            if kept:
                yield grounding_record(
                    rid=f"rsna_pneumonia/{rec_split}/{pid}", source="rsna_pneumonia", split=rec_split, modality="xray",
                    images=[str(dicom)], prompt=GROUND_TARGET.format(target="pneumonia"), boxes=kept,
                    image_size=(width, height), meta={"patient_id": pid},
                )
