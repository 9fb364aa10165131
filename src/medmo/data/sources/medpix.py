"""MedPix 2.0 (Siragusa et al., arXiv:2407.02994): 2,050 CT and MR images of 671 clinical
cases from NLM's MedPix teaching library, each with its own caption, for captioning.

Release layout (github CHILab1/MedPix-2.0, folder `MedPix-2-0/`, read from its README and
`splitted_dataset/README.md`): `Case_topic.json` (one object per case: U_id, TAC and MRI
image-name lists, Case {Title, History, Exam, Findings, ...}, Topic {...}),
`Descriptions.json` (one object per image: Type CT|MR, U_id, image "MPX1009_synpic46283"
(no extension), Description {ACR Codes, Age, Caption, Figure Part, Modality, Plane, Sex},
Location, Location Category), `images/<image>.png`, and `splitted_dataset/` with the same
objects split by case (every image of a case in one split, balanced by modality and
location category): `descriptions_{train,train_1,train_2,dev,test}.jsonl` and
`data_*.jsonl`. Point `raw` at `MedPix-2-0/` (or at one descriptions_*.jsonl).
Splits: train (= train_1 + train_2), dev, test; `--split train_1|train_2` reads a half;
split=None converts train, dev and test. One task "caption" record per image with its
Description.Caption; modality from Description.Modality (`_conversation.modality_from_text`,
falling back to Type), body location in meta for `medmo data stats`. The case texts of
Case_topic.json are not converted.
Overlap: VQA-RAD's images are MedPix images too (synpicNNNNN): meta.synpic keeps the id,
and `medmo data overlap` against the vqa_rad benchmark finds shared pictures by hash.
Licence: MedPix images are NLM teaching material, free for education and research with
attribution; the MedPix 2.0 README read here states no licence of its own (unverified).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._conversation import modality_from_text
from medmo.data.sources._qa import keep, read_rows
from medmo.data.sources._report import caption_record

SPLITS = ("train", "dev", "test")
_SUBSPLITS = ("train_1", "train_2")


@register_source("medpix", tasks=("caption",), modality="radiology", licence="NLM MedPix: education/research with attribution",
                 url="https://github.com/CHILab1/MedPix-2.0")
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the MedPix-2-0 folder (splitted_dataset/descriptions_*.jsonl, images/)")
    if split not in (None, *SPLITS, *_SUBSPLITS):
        raise ValueError(f"MedPix 2.0 splits are {', '.join(SPLITS + _SUBSPLITS)}, not {split!r}")
    if raw.is_file():
        files = [(split or raw.stem.removeprefix("descriptions_"), raw)]
        root = raw.parent.parent
    else:
        root = raw
        folder = raw / "splitted_dataset"
        files = [(sp, folder / f"descriptions_{sp}.jsonl") for sp in ([split] if split else SPLITS)]
        missing = [str(p) for _, p in files if not p.exists()]
        if missing:
            raise FileNotFoundError(f"{raw}: no {', '.join(missing)}; expected MedPix 2.0's splitted_dataset/")
    for sp, path in files:
        for i, row in enumerate(read_rows(path)):
            where = f"{path.name}:{i + 1}"
            with drops.guard(where):
                if not keep(row, drops, where, ("image", "Description")):
                    continue
                desc = row["Description"]
                if not str(desc.get("Caption") or "").strip():
                    drops.add("missing_field", f"{where}: no Description.Caption")
                    continue
                modality = modality_from_text(desc.get("Modality"))
                synpic = re.search(r"synpic\d+", row["image"])
                yield caption_record(
                    rid=f"medpix/{sp}/{row['image']}", source="medpix", split=sp,
                    image=str((root / "images" / f"{row['image']}.png").resolve()), caption=desc["Caption"],
                    modality=modality if modality != "other" else modality_from_text(row.get("Type")),
                    meta={"case": row.get("U_id"), "location": row.get("Location"),
                          "location_category": row.get("Location Category"), "plane": desc.get("Plane"),
                          "synpic": synpic.group(0) if synpic else None})
