"""Kaggle Data Science Bowl 2018 nuclei (one mask per nucleus) -> grounding records.

Release: https://www.kaggle.com/c/data-science-bowl-2018 and the Broad Bioimage Benchmark
Collection copy BBBC038 (https://bbbc.broadinstitute.org/BBBC038). Caicedo et al.,
"Nucleus segmentation across imaging experiments: the 2018 Data Science Bowl", Nature
Methods 2019. Licence: CC0 (BBBC038); cite the paper.

Layout (stage1_train.zip; the same as BBBC038's stage1_train):

    stage1_train/<id>/images/<id>.png      RGBA PNG (fluorescence, brightfield or H&E)
    stage1_train/<id>/masks/<mask_id>.png  one 0/255 PNG per nucleus, same size

Point `raw` at stage1_train/ or the folder holding it. Conversion is the generic mask
importer's (medmo.data.sources.masks, the DSB2018 layout): instance k = mask file k,
one box per instance, its pixel extent with exclusive upper corners, no minimum area
(every annotated nucleus is kept). Label "Nucleus", prompt "Detect and localize all
nuclei in the image." Split: "train" (stage1_train is the only stage with masks in the
release; stage1_test's masks came later as stage1_solution.csv, not read here).

Overlap: medmo's Cell benchmark (data/cell.py) is built from DSB2018 masks too
(shared/data/cell_nuclei_dsb2018 is a DSB2018 image). Do not build it from stage1_train
while training on this source; `medmo data overlap` finds shared images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources import masks


@register_source("dsb2018", tasks=("grounding",), modality="microscopy", licence="CC0 (BBBC038)",
                 url="https://bbbc.broadinstitute.org/BBBC038", splits={"train": 670})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "DSB2018's stage1_train/ (<id>/images/<id>.png + <id>/masks/*.png)")
    folder = raw / "stage1_train" if (raw / "stage1_train").is_dir() else raw
    if folder.name != "stage1_train":
        raise FileNotFoundError(f"{raw}: expected DSB2018's stage1_train/ folder (or the folder holding it)")
    yield from masks.convert(folder, drops, split=split, label=canonical_label("nucleus"), target="nuclei",
                             source="dsb2018")
