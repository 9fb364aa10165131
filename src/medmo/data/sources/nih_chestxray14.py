"""NIH ChestX-ray14 disease boxes (BBox_List_2017.csv) -> grounding records.

Release: https://nihcc.app.box.com/v/ChestXray-NIHCC (Wang et al., CVPR 2017).
Licence/access: NIH Clinical Center, "no restrictions on use", attribution required
(cite the paper and link the release). No credentials.

Point `raw` at the release folder (holding BBox_List_2017.csv and the images_*/images/
folders) or at the CSV itself. Fields used:

    Image Index      e.g. 00013118_008.png; the image is found under images/ or
                     images_NNN/images/ next to the CSV (else `<folder>/images/<name>`)
    Finding Label    one of 8 findings; the release spells "Infiltrate" (not "Infiltration")
    Bbox [x,y,w,h]   float pixels on the 1024x1024 PNG, (x, y) = top-left corner

The header quirk: the header line is `Image Index,Finding Label,Bbox [x,y,w,h],,,` so a
CSV reader sees the columns 'Bbox [x', 'y', 'w', 'h]' plus empty ones; data rows have
six fields. We read by position after checking the first two header names.

One record per (image, finding) holding all of that finding's boxes, prompt
"Locate the <finding> in the image. ..." and target "Finding <box>[[...]]</box>" on the
0-1000 grid; box labels are the shared vocabulary's names (medmo.data.labels:
"Infiltrate" -> "Infiltration", "Effusion" -> "Pleural effusion"; meta["finding"] keeps
NIH's). Split: "test" (the box list is an evaluation set: 984 boxes on 880 images);
when the release's train_val_list.txt sits next to the CSV, the images it lists get
"train" instead, following NIH's patient-wise split. Every image is 1024x1024 in the
release, so sizes are not read from disk.
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
from medmo.model.prompts import GROUND_TARGET

CSV_NAME = "BBox_List_2017.csv"
IMAGE_SIZE = (1024, 1024)
FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltrate", "Mass", "Nodule", "Pneumonia", "Pneumothorax")


def _image_index(folder: Path) -> dict[str, Path]:
    """Image name -> path for the release's images_NNN/images/ (or images/) folders."""
    found: dict[str, Path] = {}
    for sub in [folder / "images", *sorted(folder.glob("images_*/images"))]:
        if sub.is_dir():
            found.update({p.name: p for p in sub.glob("*.png")})
    return found


@register_source("nih_chestxray14", tasks=("grounding",), modality="xray",
                 licence="NIH Clinical Center, no restrictions on use (attribution)",
                 url="https://nihcc.app.box.com/v/ChestXray-NIHCC", splits={"test": 984})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, f"the NIH ChestX-ray14 folder or its {CSV_NAME}")
    csv_path = raw / CSV_NAME if raw.is_dir() else raw
    require_path(csv_path, f"{CSV_NAME} (NIH ChestX-ray14 bounding boxes)")
    folder = csv_path.parent
    train_list = folder / "train_val_list.txt"
    train = set(train_list.read_text().split()) if train_list.exists() else set()
    images = _image_index(folder)

    groups: dict[tuple[str, str], list] = defaultdict(list)
    with csv_path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        rows = csv.reader(f)
        header = next(rows, [])
        if header[:2] != ["Image Index", "Finding Label"]:
            raise ValueError(f"{csv_path}: header {header[:3]} is not NIH's "
                             "'Image Index,Finding Label,Bbox [x,y,w,h],,,'; is this BBox_List_2017.csv?")
        for line, row in enumerate(csv_rows(rows, csv_path.name, drops), 2):
            with drops.guard(f"{csv_path.name}:{line}"):
                check_utf8(row)
                fields = [v for v in row if v.strip()]
                if len(fields) != 6:
                    drops.add("malformed_row", f"{csv_path.name}:{line}: {len(fields)} fields, expected 6")
                    continue
                name, label = fields[0].strip(), fields[1].strip()
                try:
                    x, y, w, h = (float(v) for v in fields[2:])
                except ValueError:
                    drops.add("malformed_row", f"{csv_path.name}:{line}: non-numeric box {fields[2:]}")
                    continue
                box = check_box([x, y, x + w, y + h], *IMAGE_SIZE, drops, f"{csv_path.name}:{line}",
                                canonical_label(label))
                if box is not None:
                    groups[(name, label)].append(box)

    for (name, label), boxes in sorted(groups.items()):
        with drops.guard(f"{csv_path.name} {name} {label}"):
            rec_split = "train" if name in train else "test"
            if split is not None and rec_split != split:
                continue
            image = images.get(name, folder / "images" / name)
            yield grounding_record(
                rid=f"nih_chestxray14/{rec_split}/{Path(name).stem}/{label.lower()}",
                source="nih_chestxray14", split=rec_split, modality="xray", images=[str(image)],
                prompt=GROUND_TARGET.format(target=label.lower()), boxes=boxes, image_size=IMAGE_SIZE,
                meta={"image_index": name, "finding": label},
            )
