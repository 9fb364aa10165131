"""TBX11K tuberculosis chest X-rays (Pascal VOC XML boxes) -> grounding records.

Release: https://github.com/yun-liu/Tuberculosis (Liu et al., "Rethinking Computer-aided
Tuberculosis Diagnosis", CVPR 2020). Licence/access: free download for non-commercial
research (the authors' terms); cite the paper. 11,200 512x512 PNGs.

Layout (TBX11K.zip):

    imgs/health/h0001.png, imgs/sick/s0001.png, imgs/tb/tb0003.png, imgs/test/, imgs/extra/
    annotations/xml/tb0003.xml      Pascal VOC: <size>, <object><name>ActiveTuberculosis</name>
                                    <bndbox><xmin>..; only TB images have one
    annotations/json/*.json         the same boxes as COCO json (not read)
    lists/TBX11K_train.txt          6,600 lines "tb/tb0003.png" (relative to imgs/)
    lists/TBX11K_val.txt            1,800 lines; all_*.txt add the extra sets (not read)

Point `raw` at the TBX11K folder. Split: the authors' TBX11K_train / TBX11K_val lists;
the test set's labels are not public (imgs/test is never read). Classes:
ActiveTuberculosis -> "Active tuberculosis", ObsoletePulmonaryTuberculosis -> "Latent
tuberculosis" (the paper's name for it), PulmonaryTuberculosis -> "Tuberculosis" (type
uncertain), through the shared vocabulary. Coordinates: VOC's 1-based inclusive
corners as [xmin - 1, ymin - 1, xmax, ymax] (voc_boxes; the release follows the VOC
format and medmo did not find the authors stating otherwise). One record per TB image,
"Detect and localize all tuberculosis lesions in the image.", targets grouped by label;
healthy and sick-but-not-TB images (no XML) give no record (counted as no_finding).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._grounding import grounding_record, voc_boxes
from medmo.model.prompts import GROUND_ALL

LISTS = {"train": "TBX11K_train.txt", "val": "TBX11K_val.txt"}


@register_source("tbx11k", tasks=("grounding",), modality="xray", licence="non-commercial research (authors' terms)",
                 url="https://github.com/yun-liu/Tuberculosis", splits={"train": 600, "val": 200})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the TBX11K folder (imgs/, annotations/xml/, lists/)")
    if not (raw / "lists" / LISTS["train"]).is_file() and not (raw / "lists" / LISTS["val"]).is_file():
        raise FileNotFoundError(f"{raw}: expected lists/TBX11K_train.txt and lists/TBX11K_val.txt (TBX11K)")
    for part, name in LISTS.items():
        listing = raw / "lists" / name
        if not listing.is_file() or (split is not None and part != split):
            continue
        for entry in listing.read_text().split():
            rel = entry.removeprefix("imgs/")
            with drops.guard(f"{name} {rel}"):
                xml = raw / "annotations" / "xml" / f"{Path(rel).stem}.xml"
                if not xml.is_file():
                    drops.add("no_finding", rel)
                    continue
                image = raw / "imgs" / rel
                if not image.is_file():
                    drops.add("image_missing", rel)
                    continue
                found = voc_boxes(xml, drops, default_size=(512, 512))  # every TBX11K image is 512x512
                if found is None:
                    continue
                size, boxes = found
                yield grounding_record(
                    rid=f"tbx11k/{part}/{Path(rel).stem}", source="tbx11k", split=part, modality="xray",
                    images=[str(image)], prompt=GROUND_ALL.format(target="tuberculosis lesions"),
                    boxes=boxes, image_size=size, meta={"classes": sorted({b.label for b in boxes})},
                )
