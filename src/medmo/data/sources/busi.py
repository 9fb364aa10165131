"""BUSI breast ultrasound (benign / malignant masks) -> grounding records, one box per tumour.

Release: https://scholar.cu.edu.eg/?q=afahmy/pages/dataset (Al-Dhabyani et al., "Dataset
of breast ultrasound images", Data in Brief 28, 2020). Licence: CC0 1.0 (as published on
Kaggle by the authors); cite the paper. 780 PNGs: 437 benign, 210 malignant, 133 normal.

Layout (Dataset_BUSI_with_GT.zip):

    Dataset_BUSI_with_GT/benign/benign (1).png            the image (often saved as RGB)
    Dataset_BUSI_with_GT/benign/benign (1)_mask.png       its tumour mask, 0/255
    Dataset_BUSI_with_GT/benign/benign (4)_mask_1.png     a second tumour's mask, when there is one
    Dataset_BUSI_with_GT/malignant/..., normal/...        same naming; normal masks are empty

Point `raw` at Dataset_BUSI_with_GT/ (or the folder above). An image's masks (_mask,
_mask_1, _mask_2) are joined, then one box per 8-connected component through
medmo.data.sources.masks (components under 16 px dropped as too_small); pixels,
exclusive upper corners. Labels: "Benign tumor" / "Malignant tumor" from the folder.
Normal images (empty masks) yield no record and are counted as no_finding.
Departure: no published split; medmo's is seeded by "<class>/<image name>" (10% "test").
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._grounding import seeded_split
from medmo.data.sources.masks import pair_records

CLASSES = ("benign", "malignant", "normal")
MASK = re.compile(r"^(?P<image>.+)_mask(?:_\d+)?$")


@register_source("busi", tasks=("grounding",), modality="ultrasound", licence="CC0 1.0",
                 url="https://scholar.cu.edu.eg/?q=afahmy/pages/dataset", splits={"all": 647})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "Dataset_BUSI_with_GT/ (benign/, malignant/, normal/)")
    root = raw / "Dataset_BUSI_with_GT" if (raw / "Dataset_BUSI_with_GT").is_dir() else raw
    if not any((root / c).is_dir() for c in CLASSES):
        raise FileNotFoundError(f"{root}: expected BUSI's benign/, malignant/ and normal/ folders")
    for cls in CLASSES:
        folder = root / cls
        if not folder.is_dir():
            continue
        masks: dict[str, list[Path]] = defaultdict(list)
        images: dict[str, Path] = {}
        for p in sorted(folder.glob("*.png")):
            m = MASK.match(p.stem)
            if m:
                masks[m["image"]].append(p)
            else:
                images[p.stem] = p
        for stem in sorted(set(masks) - set(images)):
            drops.add("image_missing", f"{cls}/{stem}")
        if cls == "normal":  # no tumour: nothing to ground
            for stem in images:
                drops.add("no_finding", f"{cls}/{stem}")
            continue
        pairs = [(f"{cls}/{stem}".replace(" ", "_"), seeded_split(f"{cls}/{stem}", salt="busi"), image,
                  masks.get(stem, [])) for stem, image in sorted(images.items())]
        yield from pair_records(pairs, drops, source="busi", modality="ultrasound", label=canonical_label(cls),
                                target="breast tumors", split=split)
