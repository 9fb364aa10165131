"""Bacteria in darkfield microscopy (spirochaete / erythrocyte masks) -> grounding records.

Release: "Bacteria detection with darkfield microscopy", Long Nguyen, Kaggle
(https://www.kaggle.com/datasets/longnguyen2306/bacteria-detection-with-darkfield-microscopy):
366 darkfield images of blood samples with spirochaete bacteria (Borrelia), hand
segmented. Licence: as stated on the Kaggle page (medmo could not check it offline;
read it before redistributing); cite the Kaggle dataset. medmo's choice for the
"bacteria detection set" of issue 16: public, with masks, and the bacteria benchmark
(eval/benchmarks/bacteria.py) reads the same images/ + masks/ layout.

Layout (as the release's own notebooks read it: `images/{name}.png`, `masks/{name}.png`,
mask read as greyscale with values 0 / 1 / 2):

    images/001.png ... 366.png      RGB darkfield frame (sizes vary)
    masks/001.png                   same name; 0 = background, 1 = erythrocyte, 2 = spirochaete

One record per (image, class present): the spirochaetes as "Detect and localize all
bacteria in the image." (label "Spirochaete", the benchmark's prompt), the erythrocytes
as "... all red blood cells ..." (label "Red blood cell"). Boxes: one per 8-connected
component of the class's pixels through medmo.data.sources.masks (components under 16
px dropped as too_small), pixels, exclusive upper corners. Touching bacteria merge into
one component (the masks are semantic, not instance). Departure: no published split;
medmo's is seeded by image name (10% "test"). Do not also evaluate the bacteria
benchmark on this release, or check the mix with `medmo data overlap`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._grounding import seeded_split
from medmo.data.sources.masks import image_size, mask_record, read_array
from medmo.model.prompts import GROUND_ALL

CLASSES = ((2, "spirochaete", "bacteria"), (1, "erythrocyte", "red blood cells"))  # (mask value, label, prompt target)


@register_source("darkfield_bacteria", tasks=("grounding",), modality="microscopy",
                 licence="see the Kaggle page (unverified offline)",
                 url="https://www.kaggle.com/datasets/longnguyen2306/bacteria-detection-with-darkfield-microscopy",
                 splits={"all": 366})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the darkfield bacteria folder (images/, masks/)")
    if not ((raw / "images").is_dir() and (raw / "masks").is_dir()):
        raise FileNotFoundError(f"{raw}: expected images/ and masks/ (same file names, mask values 0/1/2)")
    for m in sorted((raw / "masks").glob("*.png")):
        item_split = seeded_split(m.stem, salt="darkfield_bacteria")
        if split is not None and item_split != split:
            continue
        with drops.guard(f"masks/{m.name}"):
            image = raw / "images" / m.name
            if not image.is_file():
                drops.add("image_missing", m.name)
                continue
            mask = read_array(m)
            mask = mask[..., 0] if mask.ndim == 3 else mask
            if not np.isin(mask, (0, 1, 2)).all():
                drops.add("mask_unexpected_values", f"{m.name}: {np.unique(mask)[:6].tolist()}")
                continue
            size = image_size(image)
            for value, name, target in CLASSES:
                rec = mask_record(mask=mask == value, size=size, rid=f"darkfield_bacteria/{item_split}/{m.stem}/{name}",
                                  source="darkfield_bacteria", split=item_split, modality="microscopy", image=image,
                                  label=canonical_label(name), prompt=GROUND_ALL.format(target=target), drops=drops,
                                  meta={"mask_value": value})
                if rec is not None:
                    yield rec
