"""Medical Segmentation Decathlon Task03 Liver (CT + tumour label volumes) -> 2-D grounding
records: a box per liver tumour on chosen axial slices.

Release: http://medicaldecathlon.com/ (Task03_Liver.tar; Antonelli et al., "The Medical
Segmentation Decathlon", Nature Communications 13, 4128, 2022; the volumes are LiTS's
training set, Bilic et al., Medical Image Analysis 84, 2023). Licence: CC BY-SA 4.0;
cite both papers.

Layout (Task03_Liver.tar):

    Task03_Liver/dataset.json       "labels": {"0": "background", "1": "liver", "2": "cancer"},
                                    "training": [{"image": "./imagesTr/liver_0.nii.gz",
                                                  "label": "./labelsTr/liver_0.nii.gz"}, ...]
    Task03_Liver/imagesTr/liver_0.nii.gz ... (131 CT volumes, HU, int16 or float)
    Task03_Liver/labelsTr/liver_0.nii.gz     (label volumes, same grid)
    Task03_Liver/imagesTs/                   (70 volumes without labels: never read)

The tar also holds macOS "._liver_0.nii.gz" AppleDouble files beside the real ones;
dataset.json never lists them and they are not read. Cases are read from
dataset.json's "training" list; a listed file that is absent is image_missing /
label_missing, a volume nibabel cannot read is volume_unreadable.

Slices: label 2 ("cancer"), one record per chosen axial slice by medmo.data.sources.
_volumes (each 3-D tumour's largest cross-section; all tumours on the slice boxed),
windowed with the CT "abdomen" preset (40, 400) HU and written as PNG under the image
folder (`--image-dir`, default OUT/images with `medmo data convert`). Boxes are pixels of
that PNG, exclusive upper corners, label "Liver tumor". Split: the labelled cases are
the release's training set; medmo holds out a seeded 10% of cases as "test" (by case
name, so every slice of a case is on one side).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._grounding import seeded_split
from medmo.data.sources._qa import image_folder
from medmo.data.sources._volumes import volume_records
from medmo.imaging import WINDOW_PRESETS

TUMOUR = (2,)


def cases(root: Path, name: str) -> list[tuple[str, Path, Path]]:
    """[(case, image, label)] from an MSD task's dataset.json "training" list."""
    meta = root / "dataset.json"
    if not meta.is_file():
        raise FileNotFoundError(f"{root}: no dataset.json; expected the {name} folder of the "
                                "Medical Segmentation Decathlon")
    data = json.loads(meta.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("training"), list):
        raise ValueError(f"{meta}: expected an MSD dataset.json with a 'training' list of {{image, label}}")
    out = []
    for item in data["training"]:
        if isinstance(item, dict) and "image" in item and "label" in item:
            image = root / str(item["image"]).removeprefix("./")
            labels = root / str(item["label"]).removeprefix("./")
            out.append((image.name.removesuffix(".gz").removesuffix(".nii"), image, labels))
    return out


@register_source("msd_liver", tasks=("grounding",), modality="ct", licence="CC BY-SA 4.0",
                 url="http://medicaldecathlon.com/",
                 splits={"all": 131})
def convert(raw: str | Path, drops: Drops, split: str | None = None, image_dir: Path | None = None) -> Iterator[Record]:
    raw = require_path(raw, "Task03_Liver/ (dataset.json, imagesTr/, labelsTr/)")
    root = raw / "Task03_Liver" if (raw / "Task03_Liver").is_dir() else raw
    folder = image_folder("msd_liver", image_dir)
    for case, image, labels in cases(root, "Task03_Liver"):
        case_split = seeded_split(case, salt="msd_liver")
        if split is not None and case_split != split:
            continue
        with drops.guard(f"Task03_Liver/{case}"):
            yield from volume_records(image=image, labels=labels, values=TUMOUR, case=case, source="msd_liver",
                                      split=case_split, label=canonical_label("liver tumor"), target="liver tumors",
                                      window=WINDOW_PRESETS["abdomen"], folder=folder, drops=drops)
