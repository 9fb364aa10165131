"""KiTS19 kidney tumours (CT + segmentation volumes) -> 2-D grounding records: a box per
kidney tumour on chosen axial slices.

Release: https://github.com/neheller/kits19 (Heller et al., "The state of the art in
kidney and kidney tumor segmentation in contrast-enhanced CT imaging: Results of the
KiTS19 challenge", Medical Image Analysis 67, 2021; data: arXiv:1904.00445). Licence:
CC BY-NC-SA 4.0; cite both. The repository's starter code downloads the volumes.

Layout (after the repository's get_imaging step):

    data/case_00000/imaging.nii.gz        CT in HU; the array is (z, y, x) with an affine
                                          whose first axis is the slice axis
    data/case_00000/segmentation.nii.gz   0 background, 1 kidney, 2 tumour (cases 0-209)
    data/case_00210/imaging.nii.gz        cases 210-299: the challenge's test set, no
                                          segmentation (counted as label_missing)

KiTS19's unusual axis order is undone by medmo.imaging.nifti (reoriented to RAS+ from
the affine), so "axial" is the anatomical plane. Slices: label 2 (tumour), one record per
chosen axial slice by medmo.data.sources._volumes (each 3-D tumour's largest
cross-section; all tumours on the slice boxed), windowed with the CT "abdomen" preset
(40, 400) HU and written as PNG under the image folder. Boxes are pixels of that PNG,
exclusive upper corners, label "Kidney tumor". On the repository's own segmentations of
cases 0-2 (commit 456b293, with a stand-in CT) it gives 5 slices (1, 3 and 1 tumours),
every tumour pixel of each slice inside its box, in 0.9 GB peak for a 611x512x512 case.
Split: the 210 labelled cases are the release's training set; medmo holds out a seeded
10% of cases as "test" (by case id).
"""
from __future__ import annotations

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


@register_source("kits19", tasks=("grounding",), modality="ct", licence="CC BY-NC-SA 4.0",
                 url="https://github.com/neheller/kits19", splits={"all": 210})
def convert(raw: str | Path, drops: Drops, split: str | None = None, image_dir: Path | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the kits19 repository folder or its data/ (case_XXXXX/imaging.nii.gz)")
    root = raw / "data" if (raw / "data").is_dir() else raw
    cases = sorted(p for p in root.glob("case_*") if p.is_dir())
    if not cases:
        raise FileNotFoundError(f"{root}: no case_XXXXX/ folders (KiTS19 data/)")
    folder = image_folder("kits19", image_dir)
    for case_dir in cases:
        case = case_dir.name
        case_split = seeded_split(case, salt="kits19")
        if split is not None and case_split != split:
            continue
        with drops.guard(f"kits19/{case}"):
            yield from volume_records(image=case_dir / "imaging.nii.gz", labels=case_dir / "segmentation.nii.gz",
                                      values=TUMOUR, case=case, source="kits19", split=case_split,
                                      label=canonical_label("kidney tumor"), target="kidney tumors",
                                      window=WINDOW_PRESETS["abdomen"], folder=folder, drops=drops)
