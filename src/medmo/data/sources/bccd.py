"""BCCD blood cells (Pascal VOC XML boxes) -> grounding records.

Release: https://github.com/Shenggan/BCCD_Dataset (BCCD, Blood Cell Count and Detection;
a cleaned copy of the cosmicad / akshaylamba blood-cell images). Licence: MIT; cite the
repository. 364 annotated 640x480 JPEG smears; classes RBC, WBC, Platelets.

Layout (the repository's BCCD/ folder, Pascal VOC):

    BCCD/Annotations/BloodImage_00000.xml     <size><width>640 ...; <object><name>WBC</name>
                                              <bndbox><xmin>260</xmin>...<ymax>...</bndbox>
    BCCD/JPEGImages/BloodImage_00000.jpg
    BCCD/ImageSets/Main/train.txt, val.txt, test.txt   one image stem per line

Point `raw` at the repository folder or BCCD/. Coordinates: VOC's 1-based inclusive
pixel indices, read by medmo.data.sources._grounding.voc_boxes as continuous boxes
[xmin - 1, ymin - 1, xmax, ymax], checked by check_box like every source's. Sizes
from each XML's <size>. On the repository itself (commit d272fb1) this converter
keeps all 364 images (205 / 87 / 72) and 4,155 RBC, 372 WBC, 361 platelet boxes,
dropping nothing. One record per image with all its cells, "Detect and localize all blood cells
in the image.", targets grouped by label ("Red blood cell <box>... White blood cell
<box>... Platelet <box>..."). Split: the repository's ImageSets/Main lists (train / val /
test); an image in none of them is counted as not_in_split_lists.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._grounding import grounding_record, voc_boxes
from medmo.model.prompts import GROUND_ALL

SPLITS = ("train", "val", "test")


def find_root(raw: Path) -> Path:
    for root in (raw, raw / "BCCD"):
        if (root / "Annotations").is_dir() and (root / "JPEGImages").is_dir():
            return root
    raise FileNotFoundError(f"{raw}: expected BCCD's Annotations/ and JPEGImages/ (in it or in BCCD/)")


@register_source("bccd", tasks=("grounding",), modality="microscopy", licence="MIT",
                 url="https://github.com/Shenggan/BCCD_Dataset", splits={"train": 205, "val": 87, "test": 72})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    root = find_root(require_path(raw, "the BCCD_Dataset folder (BCCD/Annotations, BCCD/JPEGImages, BCCD/ImageSets)"))
    split_of = {}
    for part in SPLITS:
        listing = root / "ImageSets" / "Main" / f"{part}.txt"
        if listing.is_file():
            split_of.update({stem: part for stem in listing.read_text().split()})
    if not split_of:
        raise FileNotFoundError(f"{root}: no ImageSets/Main/train.txt, val.txt or test.txt (BCCD's split lists)")
    for xml in sorted((root / "Annotations").glob("*.xml")):
        with drops.guard(f"Annotations/{xml.name}"):
            part = split_of.get(xml.stem)
            if part is None:
                drops.add("not_in_split_lists", xml.stem)
                continue
            if split is not None and part != split:
                continue
            image = root / "JPEGImages" / f"{xml.stem}.jpg"
            if not image.is_file():
                drops.add("image_missing", image.name)
                continue
            found = voc_boxes(xml, drops)
            if found is None:
                continue
            size, boxes = found
            yield grounding_record(
                rid=f"bccd/{part}/{xml.stem}", source="bccd", split=part, modality="microscopy", images=[str(image)],
                prompt=GROUND_ALL.format(target="blood cells"), boxes=boxes,
                image_size=size, meta={"file_name": image.name},
            )
