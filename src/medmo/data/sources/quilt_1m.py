"""Quilt-1M (Ikezogwo et al., NeurIPS 2023 Datasets & Benchmarks): 1M histopathology
image/caption pairs, mostly from narrated YouTube pathology videos (plus PubMed, OpenPath
tweets and LAION), for captioning and image-text retrieval.

Release layout (quilt1m.github.io; the Zenodo record 8239942 of images rescaled to 512 px,
or the full-size copy on request): `quilt_1M_lookup.csv` beside the image folder
`quilt_1m/` (the image zips unpack to it). The CSV, as pandas writes it (an unnamed index
column first), has the columns caption, image_path (a file name in the image folder),
subset (quilt | pubmed | openpath | laion), split (train | val, as public loaders of the
file assert), pathology (a Python-list string such as "['Dermatopathology']"), roi_text,
noisy_text, corrected_text, med_umls_ids, magnification, height, width; the column list
was read from loader code that opens this file (a public QUILT cleaning script quoting
`df.columns`). Point `raw` at the folder holding the CSV (or at the CSV).
Splits: the CSV's `split` column; `--split` keeps one, default all. Records are task
"caption", modality "pathology", one per row; a row without caption or image_path is
counted. Licence: research use only under the Quilt-1M terms (Zenodo record; the YouTube
frames are not redistributable for commercial use); subsets keep their own sources' terms.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import find_file, keep, read_rows
from medmo.data.sources._report import caption_record, first_existing

IMAGE_DIRS = ("quilt_1m", "images", ".")


@register_source("quilt_1m", tasks=("caption",), modality="pathology", licence="research use only (Quilt-1M terms)",
                 url="https://quilt1m.github.io/ (Zenodo 8239942)", splits={"train": 1_017_712})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the Quilt-1M folder (quilt_1M_lookup.csv, quilt_1m/) or quilt_1M_lookup.csv")
    path = find_file(raw, ["quilt_1M_lookup.csv", "*/quilt_1M_lookup.csv"], "quilt_1M_lookup.csv")
    root = path.parent
    for i, row in enumerate(read_rows(path)):
        where = f"{path.name}:{i + 2}"
        with drops.guard(where):
            sp = str(row.get("split") or "train").strip() if isinstance(row, dict) else "train"
            if split and sp != split:  # before the checks: another split's bad rows are not this one's drops
                continue
            if not keep(row, drops, where, ("caption", "image_path")):
                continue
            name = str(row["image_path"])
            yield caption_record(rid=f"quilt_1m/{sp}/{Path(name).stem}", source="quilt_1m", split=sp,
                                 image=first_existing([root / d / name for d in IMAGE_DIRS]), caption=row["caption"],
                                 modality="pathology",
                                 meta={k: row[k] for k in ("subset", "pathology", "magnification") if row.get(k)})
