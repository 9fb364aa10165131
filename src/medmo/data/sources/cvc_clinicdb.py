"""CVC-ClinicDB colonoscopy polyps (binary masks) -> grounding records, one box per polyp.

Release: https://polyp.grand-challenge.org/CVCClinicDB/ (Bernal et al., "WM-DOVA maps for
accurate polyp highlighting in colonoscopy", Computerized Medical Imaging and Graphics
2015). Licence/access: free for research; cite the paper. 612 frames, 384x288, from 31
colonoscopy sequences.

Layout (the original archive; the common PNG copy has the same folders under PNG/):

    CVC-ClinicDB/Original/1.tif ... 612.tif           RGB frame
    CVC-ClinicDB/Ground Truth/1.tif ... 612.tif       same number; polyp mask 0/255

Point `raw` at CVC-ClinicDB/ (or a folder holding Original/ and "Ground Truth/" directly,
or their TIF/ or PNG/ copies). Boxes come from the masks through
medmo.data.sources.masks (one box per 8-connected component, components under 16 px
dropped as too_small), pixels with exclusive upper corners.

Split: none published. Consecutive frame numbers come from one sequence and look alike,
so a per-frame split would leak; medmo seeds the split by blocks of 25 consecutive frame
numbers (`seeded_split` on the block, 10% "test"). Blocks do not follow the sequence
borders exactly (the release lists none), so a few neighbouring frames can still fall
on both sides.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._grounding import seeded_split
from medmo.data.sources.masks import IMAGE_EXTS, pair_records

BLOCK = 25  # frames per split unit


def find_root(raw: Path) -> Path:
    for root in (raw, raw / "CVC-ClinicDB", raw / "TIF", raw / "PNG", raw / "CVC-ClinicDB" / "PNG"):
        if (root / "Original").is_dir() and (root / "Ground Truth").is_dir():
            return root
    raise FileNotFoundError(f"{raw}: expected CVC-ClinicDB's Original/ and 'Ground Truth/' folders")


def frame_split(stem: str) -> str:
    return seeded_split(str(int(stem) // BLOCK) if stem.isdigit() else stem, salt="cvc_clinicdb")


@register_source("cvc_clinicdb", tasks=("grounding",), modality="endoscopy",
                 licence="research use, cite Bernal et al. 2015",
                 url="https://polyp.grand-challenge.org/CVCClinicDB/", splits={"all": 612})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    root = find_root(require_path(raw, "the CVC-ClinicDB folder (Original/, Ground Truth/)"))
    images = {p.stem: p for p in (root / "Original").iterdir() if p.suffix.lower() in IMAGE_EXTS}
    masks = sorted((p for p in (root / "Ground Truth").iterdir() if p.suffix.lower() in IMAGE_EXTS),
                   key=lambda p: (len(p.stem), p.stem))
    pairs = [(m.stem, frame_split(m.stem), images.get(m.stem), [m]) for m in masks]
    yield from pair_records(pairs, drops, source="cvc_clinicdb", modality="endoscopy", label=canonical_label("polyp"),
                            target="polyps", split=split)
