"""ISIC 2018 Task 1 skin lesions (binary masks) -> grounding records, one box per lesion.

Release: https://challenge.isic-archive.com/data/#2018 (Codella et al., "Skin Lesion
Analysis Toward Melanoma Detection 2018", arXiv:1902.03368; images from HAM10000,
Tschandl et al., Sci. Data 2018). Licence: CC BY-NC 4.0; cite both papers.

Layout (the challenge's zips, unpacked side by side):

    ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg                 2594 dermoscopy images
    ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png  0/255 lesion mask
    ISIC2018_Task1-2_Validation_Input/ + ISIC2018_Task1_Validation_GroundTruth/   100
    ISIC2018_Task1-2_Test_Input/ + ISIC2018_Task1_Test_GroundTruth/               1000

Point `raw` at the folder holding them. Split: the challenge's own (Training -> "train",
Validation -> "val", Test -> "test"). Boxes come from the masks through
medmo.data.sources.masks (one box per 8-connected component, components under 16 px
dropped as too_small), pixels of the full-resolution image, exclusive upper corners.
Input folders' other files (LICENSE.txt, ATTRIBUTION.txt) are ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources.masks import pair_records

PHASES = {"Training": "train", "Validation": "val", "Test": "test"}


@register_source("isic", tasks=("grounding",), modality="dermoscopy", licence="CC BY-NC 4.0",
                 url="https://challenge.isic-archive.com/data/#2018", splits={"train": 2594, "val": 100, "test": 1000})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the folder holding ISIC2018_Task1-2_*_Input/ and ISIC2018_Task1_*_GroundTruth/")
    found = [(phase, raw / f"ISIC2018_Task1_{phase}_GroundTruth") for phase in PHASES]
    if not any(truth.is_dir() for _, truth in found):
        raise FileNotFoundError(f"{raw}: no ISIC2018_Task1_{{Training,Validation,Test}}_GroundTruth/ folder")
    for phase, truth in found:
        if not truth.is_dir() or (split is not None and PHASES[phase] != split):
            continue
        inputs = raw / f"ISIC2018_Task1-2_{phase}_Input"
        pairs = []
        for m in sorted(truth.glob("*_segmentation.png")):
            stem = m.name[: -len("_segmentation.png")]
            image = inputs / f"{stem}.jpg"
            pairs.append((stem, PHASES[phase], image if image.is_file() else None, [m]))
        yield from pair_records(pairs, drops, source="isic", modality="dermoscopy",
                                label=canonical_label("skin lesion"), target="skin lesions")
