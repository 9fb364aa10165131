"""SIIM-ACR Pneumothorax Segmentation (run-length masks) -> grounding records.

Release: https://www.kaggle.com/c/siim-acr-pneumothorax-segmentation (SIIM, ACR and the
Society of Thoracic Radiology, 2019; images from NIH ChestX-ray14). Licence/access:
Kaggle competition data, accepted rules required; non-commercial research, cite the
challenge (Zawacki et al., J. Digit. Imaging 32, 2019 for the annotation).

Layout (stage 1 release):

    train-rle.csv        header "ImageId, EncodedPixels" (note the space); one row per
                         pneumothorax region, several rows for one image; "-1" = none
    dicom-images-train/<StudyInstanceUID>/<SeriesInstanceUID>/<ImageId>.dcm   1024x1024

EncodedPixels, as the challenge's mask_functions.py decodes it: pairs (offset, length)
where each offset counts from the END of the previous run (relative, not absolute),
over the image flattened COLUMN by column (index = x * height + y). Stage 2's
stage_2_train.csv is not read.

An image's regions are joined into one mask, then one box per 8-connected component
through medmo.data.sources.masks (components under 16 px dropped as too_small), pixels
of the DICOM (its header's Columns x Rows), exclusive upper corners. Label
"Pneumothorax", prompt "Locate the pneumothorax in the image. ...". "-1" images give no
record (no_finding); a run outside the image or unparsable is bad_rle. Split: no test
masks in stage 1; seeded by ImageId (10% "test").
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, check_utf8, csv_rows, register_source, require_path
from medmo.data.sources._grounding import seeded_split
from medmo.data.sources.masks import mask_record
from medmo.imaging.dicom import header_size
from medmo.model.prompts import GROUND_TARGET

CSV_NAME = "train-rle.csv"


def decode_rle(text: str, width: int, height: int) -> np.ndarray:
    """The (height, width) bool mask of SIIM's relative, column-major run-length string."""
    values = [int(v) for v in text.split()]
    if len(values) % 2:
        raise ValueError(f"odd number of values ({len(values)})")
    flat = np.zeros(width * height, dtype=bool)
    pos = 0
    for offset, length in zip(values[0::2], values[1::2]):
        pos += offset
        if offset < 0 or length <= 0 or pos + length > flat.size:
            raise ValueError(f"run ({offset}, {length}) outside a {width}x{height} image")
        flat[pos:pos + length] = True
        pos += length
    return flat.reshape(width, height).T


@register_source("siim_acr", tasks=("grounding",), modality="xray", licence="Kaggle competition rules (non-commercial)",
                 url="https://www.kaggle.com/c/siim-acr-pneumothorax-segmentation", splits={"all": 2379})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, f"the SIIM-ACR folder ({CSV_NAME}, dicom-images-train/)")
    csv_path = raw / CSV_NAME if raw.is_dir() else raw
    require_path(csv_path, f"{CSV_NAME} (SIIM-ACR run-length masks)")
    folder = csv_path.parent
    runs: dict[str, list[str]] = defaultdict(list)
    with csv_path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header[:2] != ["ImageId", "EncodedPixels"]:
            raise ValueError(f"{csv_path}: header {header[:2]} is not SIIM's 'ImageId, EncodedPixels'")
        for line, row in enumerate(csv_rows(reader, csv_path.name, drops), 2):
            with drops.guard(f"{csv_path.name}:{line}"):
                check_utf8(row)
                if len(row) != 2:
                    drops.add("malformed_row", f"{csv_path.name}:{line}: {len(row)} fields")
                    continue
                runs[row[0].strip()].append(row[1].strip())
    dicoms = {p.stem: p for p in sorted((folder / "dicom-images-train").rglob("*.dcm"))}
    label = canonical_label("pneumothorax")
    for image_id, encoded in sorted(runs.items()):
        with drops.guard(f"{csv_path.name} {image_id}"):
            rec_split = seeded_split(image_id, salt="siim_acr")
            if split is not None and rec_split != split:
                continue
            regions = [e for e in encoded if e != "-1"]
            if not regions:
                drops.add("no_finding", image_id)
                continue
            dicom = dicoms.get(image_id)
            if dicom is None:
                drops.add("image_missing", image_id)
                continue
            width, height = header_size(dicom)
            try:
                mask = np.logical_or.reduce([decode_rle(e, width, height) for e in regions])
            except ValueError as e:
                drops.add("bad_rle", f"{image_id}: {e}")
                continue
            rec = mask_record(mask=mask, size=(width, height), rid=f"siim_acr/{rec_split}/{image_id}",
                              source="siim_acr", split=rec_split, modality="xray", image=dicom, label=label,
                              prompt=GROUND_TARGET.format(target="pneumothorax"), drops=drops,
                              meta={"image_id": image_id, "regions": len(regions)})
            if rec is not None:
                yield rec
