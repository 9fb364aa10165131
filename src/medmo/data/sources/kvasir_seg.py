"""Kvasir-SEG colon polyps (binary masks) -> grounding records, one box per polyp.

Release: https://datasets.simula.no/kvasir-seg/ (kvasir-seg.zip). Jha et al., "Kvasir-SEG:
A Segmented Polyp Dataset", MMM 2020. Licence/access: free download, for research and
education; cite the paper (Simula's terms of use). 1000 JPEG images, 332x487 to
1920x1072.

Layout (the zip, as documented on the release page and read by its users' loaders):

    Kvasir-SEG/images/cju0qkwl35piu0993l0dewei2.jpg    colonoscopy frame
    Kvasir-SEG/masks/cju0qkwl35piu0993l0dewei2.jpg     same name; white polyp on black,
                                                       saved as JPEG (values blur near edges)
    Kvasir-SEG/kavsir_bboxes.json                      {"<id>": {"height", "width",
                                                       "bbox": [{"label": "polyp", "xmin", ...}]}}

Split: the authors' 880 / 120 train / val split, published as
kvasir-seg-train-val/train.txt and val.txt (one image id per line) in
https://github.com/DebeshJha/2020-MediaEval-Medico-polyp-segmentation (commit d594c08);
the zip does not hold them, so copy both files into Kvasir-SEG/ to use them. An image
in neither list is counted as not_in_split_lists. Without the lists, medmo falls back
to a split seeded by image id (`seeded_split`, 10% "test").

Point `raw` at Kvasir-SEG/ (or the folder above it). Boxes come from the masks through
medmo.data.sources.masks (foreground >= 128, so the JPEG fringe is not polyp; one box per
8-connected component, components under 16 px dropped as too_small), in pixels of the
image with exclusive upper corners. kavsir_bboxes.json is not read: it holds the same
masks' extents, and the masks are the reference.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._grounding import seeded_split
from medmo.data.sources.masks import pair_records
from medmo.data.labels import canonical_label


def find_root(raw: Path) -> Path:
    for root in (raw, raw / "Kvasir-SEG", raw / "kvasir-seg" / "Kvasir-SEG"):
        if (root / "images").is_dir() and (root / "masks").is_dir():
            return root
    raise FileNotFoundError(f"{raw}: expected Kvasir-SEG's images/ and masks/ folders (in it or in Kvasir-SEG/)")


@register_source("kvasir_seg", tasks=("grounding",), modality="endoscopy", licence="research and education (Simula)",
                 url="https://datasets.simula.no/kvasir-seg/", splits={"train": 880, "val": 120})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    root = find_root(require_path(raw, "the Kvasir-SEG folder (images/, masks/, kavsir_bboxes.json)"))
    images = {p.stem: p for p in sorted((root / "images").glob("*.jpg"))}
    listed = {stem: part for part in ("train", "val") if (root / f"{part}.txt").is_file()
              for stem in (root / f"{part}.txt").read_text().split()}
    pairs = []
    for m in sorted((root / "masks").glob("*.jpg")):
        part = listed.get(m.stem) if listed else seeded_split(m.stem, salt="kvasir_seg")
        if part is None:
            drops.add("not_in_split_lists", m.stem)
            continue
        pairs.append((m.stem, part, images.get(m.stem), [m]))
    yield from pair_records(pairs, drops, source="kvasir_seg", modality="endoscopy", label=canonical_label("polyp"),
                            target="polyps", split=split)
