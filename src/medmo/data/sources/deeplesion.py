"""DeepLesion key-slice lesion boxes (DL_info.csv) -> grounding records.

Release: https://nihcc.app.box.com/v/DeepLesion (Yan et al., J. Med. Imaging 2018).
Licence/access: NIH Clinical Center public release, no credentials; cite the paper.

Point `raw` at the release folder (DL_info.csv and Images_png/) or at the CSV. Fields:

    File_name             000089_01_01_037.png = patient_study_series_slice; the PNG is
                          Images_png/000089_01_01/037.png
    Bounding_boxes        "x1, y1, x2, y2" float pixels on the key slice
    Image_size            "512, 512" (width, height)
    Coarse_lesion_type    1..8 = bone, abdomen, mediastinum, liver, lung, kidney, soft
                          tissue, pelvis; -1 = not labelled (training split only)
    DICOM_windows         "lo, hi" in HU, the window the annotator used
    Spacing_mm_px_        "x, y, z" mm; Slice_range "first, last" (neighbouring slices)
    Possibly_noisy        1 = the authors flag the annotation as possibly wrong (kept)
    Train_Val_Test        1 / 2 / 3 -> split "train" / "val" / "test"

The 16-bit PNG HU offset: DeepLesion PNGs are uint16 with HU = pixel - 32768. Each
record's meta carries `hu_offset` = 32768, `window_hu` (the CSV window) and
`window_png` = window_hu + 32768, the same window in stored pixel values, so an image
reader can window the PNG directly.

One record per key slice with all of its lesions: "Detect and localize all lesions in
the image." Caveat carried from the release: DeepLesion marks only the RECIST-measured
lesions, not every lesion on a slice, so an unmarked true lesion scores as a false box.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, check_utf8, csv_rows, register_source, require_path
from medmo.data.sources._grounding import check_box, grounding_record
from medmo.model.prompts import GROUND_ALL

CSV_NAME = "DL_info.csv"
HU_OFFSET = 32768
LESION_TYPES = {1: "bone", 2: "abdomen", 3: "mediastinum", 4: "liver", 5: "lung", 6: "kidney",
                7: "soft tissue", 8: "pelvis"}
SPLITS = {"1": "train", "2": "val", "3": "test"}
REQUIRED = ("File_name", "Bounding_boxes", "Image_size", "Coarse_lesion_type", "Train_Val_Test")


def _numbers(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def image_path(folder: Path, file_name: str) -> Path:
    """000089_01_01_037.png -> folder/Images_png/000089_01_01/037.png"""
    series, _, slice_png = file_name.rpartition("_")
    return folder / "Images_png" / series / slice_png


@register_source("deeplesion", tasks=("grounding",), modality="ct", licence="NIH Clinical Center public release (cite the paper)",
                 url="https://nihcc.app.box.com/v/DeepLesion")
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, f"the DeepLesion folder or its {CSV_NAME}")
    csv_path = raw
    if raw.is_dir():  # DL_info.csv, or one excerpt of it such as DL_info_sample.csv
        found = [raw / CSV_NAME] if (raw / CSV_NAME).exists() else sorted(raw.glob("DL_info*.csv"))
        if len(found) != 1:
            raise FileNotFoundError(f"{raw}: expected one {CSV_NAME} (DeepLesion annotations), found {len(found)}")
        csv_path = found[0]
    slices: dict[str, list[dict]] = defaultdict(list)
    with csv_path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: columns {missing} missing; expected DeepLesion's DL_info.csv header")
        for line, row in enumerate(csv_rows(reader, csv_path.name, drops), 2):
            where = f"{csv_path.name}:{line}"
            with drops.guard(where):
                check_utf8(row)
                try:
                    width, height = (int(v) for v in _numbers(row["Image_size"])[:2])
                    lesion_type = int(row["Coarse_lesion_type"])
                    row_split = SPLITS[row["Train_Val_Test"].strip()]
                    bbox = _numbers(row["Bounding_boxes"])
                except (ValueError, KeyError, AttributeError):
                    drops.add("malformed_row", where)
                    continue
                if split is not None and row_split != split:
                    continue
                label = LESION_TYPES.get(lesion_type, "lesion")
                box = check_box(bbox, width, height, drops, where, label)
                if box is not None:
                    slices[row["File_name"]].append({"box": box, "row": row, "size": (width, height),
                                                     "split": row_split, "type": lesion_type})

    for name, lesions in sorted(slices.items()):
        with drops.guard(f"{csv_path.name} {name}"):
            first = lesions[0]["row"]
            window = _numbers(first["DICOM_windows"]) if first.get("DICOM_windows") else None
            rec_split = lesions[0]["split"]
            yield grounding_record(
                rid=f"deeplesion/{rec_split}/{Path(name).stem}", source="deeplesion", split=rec_split,
                modality="ct", images=[str(image_path(csv_path.parent, name))],
                prompt=GROUND_ALL.format(target="lesions"), boxes=[les["box"] for les in lesions],
                image_size=lesions[0]["size"], target_label=canonical_label("lesion"),
                meta={
                    "file_name": name,
                    "key_slice_index": int(first["Key_slice_index"]) if first.get("Key_slice_index") else None,
                    "lesion_types": [les["type"] for les in lesions],
                    "possibly_noisy": [les["row"].get("Possibly_noisy") == "1" for les in lesions],
                    "spacing_mm": _numbers(first["Spacing_mm_px_"]) if first.get("Spacing_mm_px_") else None,
                    "slice_range": _numbers(first["Slice_range"]) if first.get("Slice_range") else None,
                    "hu_offset": HU_OFFSET,
                    "window_hu": window,
                    "window_png": [w + HU_OFFSET for w in window] if window else None,
                },
            )
