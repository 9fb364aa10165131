"""MoNuSeg nuclei (XML polygons per image) -> grounding records, one box per nucleus.

Release: https://monuseg.grand-challenge.org/Data/ (Kumar et al., "A Dataset and a
Technique for Generalized Nuclear Segmentation for Computational Pathology", IEEE TMI
36(7), 2017; challenge: Kumar et al., IEEE TMI 39(5), 2020). Licence: CC BY-NC-SA 4.0;
cite both papers. H&E tiles of 1000x1000 px from TCGA slides (40x): the training zip
holds 37 tiles (24,140 regions, by one user's file listing; the challenge paper speaks
of 30), the test zip 14.

Layout (the two zips):

    MoNuSeg 2018 Training Data/Tissue Images/TCGA-18-5592-01Z-00-DX1.tif
    MoNuSeg 2018 Training Data/Annotations/TCGA-18-5592-01Z-00-DX1.xml
    MoNuSegTestData/TCGA-2Z-A9J9-01A-01-TS1.tif + TCGA-2Z-A9J9-01A-01-TS1.xml (side by side)

Unzipping often nests each folder in one of the same name ("MoNuSeg 2018 Training
Data/MoNuSeg 2018 Training Data/Annotations"); both depths are read.

The XML is Aperio ImageScope's: <Annotations><Annotation><Regions><Region Id=..>
<Vertices><Vertex X="397.64" Y="14.87" Z="0"/>... one Region per nucleus, vertices in
float pixels of the tile. A box is the extent of a region's vertices ([min X, min Y,
max X, max Y], continuous coordinates, clamped to the tile); a region with fewer than 3
vertices is counted as bad_polygon. Tile sizes come from the TIFF headers. One record
per tile, "Detect and localize all nuclei in the image." MoNuSeg tiles are dense
(hundreds of nuclei each): records are long, which is what the Cell benchmark's dense
stratum asks of a model. Split: the release's training / test sets.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._grounding import check_box, grounding_record
from medmo.data.sources.masks import image_size
from medmo.model.prompts import GROUND_ALL

TRAIN = "MoNuSeg 2018 Training Data"
TEST = "MoNuSegTestData"


def _folder(raw: Path, name: str) -> Path | None:
    """raw/name, or raw/name/name when unzipping nested it."""
    return next((p for p in (raw / name / name, raw / name) if p.is_dir() and any(p.rglob("*.xml"))), None)


def pairs(raw: Path) -> list[tuple[str, Path, Path]]:
    """[(split, xml, tif)] of both releases under `raw`."""
    out = []
    if train := _folder(raw, TRAIN):
        out += [("train", x, train / "Tissue Images" / f"{x.stem}.tif")
                for x in sorted((train / "Annotations").glob("*.xml"))]
    if test := _folder(raw, TEST):
        out += [("test", x, x.with_suffix(".tif")) for x in sorted(test.glob("*.xml"))]
    return out


def region_boxes(xml: Path, width: int, height: int, drops: Drops, label: str) -> list:
    boxes = []
    for region in ET.parse(xml).getroot().iter("Region"):
        where = f"{xml.name} region {region.get('Id')}"
        points = [(v.get("X"), v.get("Y")) for v in region.iter("Vertex")]
        if len(points) < 3:
            drops.add("bad_polygon", f"{where}: {len(points)} vertices")
            continue
        try:
            xs, ys = [float(x) for x, _ in points], [float(y) for _, y in points]
            xyxy: list = [min(xs), min(ys), max(xs), max(ys)]
        except (TypeError, ValueError):
            xyxy = [None] * 4  # check_box counts it as box_malformed
        box = check_box(xyxy, width, height, drops, where, label)
        if box is not None:
            boxes.append(box)
    return boxes


@register_source("monuseg", tasks=("grounding",), modality="pathology", licence="CC BY-NC-SA 4.0",
                 url="https://monuseg.grand-challenge.org/Data/", splits={"train": 37, "test": 14})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, f"the folder holding '{TRAIN}/' and/or '{TEST}/'")
    found = pairs(raw)
    if not found:
        raise FileNotFoundError(f"{raw}: expected '{TRAIN}/Annotations/*.xml' or '{TEST}/*.xml' (MoNuSeg)")
    label = canonical_label("nucleus")
    for part, xml, tif in found:
        if split is not None and part != split:
            continue
        with drops.guard(f"{part}/{xml.name}"):
            if not tif.is_file():
                drops.add("image_missing", tif.name)
                continue
            size = image_size(tif)
            try:
                boxes = region_boxes(xml, *size, drops, label)
            except ET.ParseError as e:
                drops.add("xml_unreadable", f"{xml.name}: {e}")
                continue
            if not boxes:
                drops.add("no_finding", xml.name)
                continue
            yield grounding_record(
                rid=f"monuseg/{part}/{xml.stem}", source="monuseg", split=part, modality="pathology", images=[str(tif)],
                prompt=GROUND_ALL.format(target="nuclei"), boxes=boxes, image_size=size, meta={"nuclei": len(boxes)},
            )
