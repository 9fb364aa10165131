"""SLAKE 1.0 (Liu et al., ISBI 2021): bilingual (English/Chinese) radiology VQA.

Release format (the official zip and the Hugging Face copy `BoKelvin/SLAKE`, same files):
`train.json`, `validate.json`, `test.json` (lists of {img_id, img_name "xmlabN/source.jpg",
question, answer, q_lang en|zh, location, modality CT|MRI|X-Ray, answer_type OPEN|CLOSED,
base_type vqa|kvqa, triple, qid, content_type}) and `imgs/xmlabN/source.jpg` (imgs.zip).
Splits: train, validate (also accepted as "validation"), test (2094 = 1061 en + 1033 zh;
the usual SLAKE-EN test is the 1061 English questions, 645 open / 416 closed).
Licence: CC BY 4.0. One source holds both languages; `meta.lang` tells them apart (the
benchmarks slake_en / slake_zh / slake filter on it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import find_file, keep, read_rows, vqa_record

_MODALITY = {"ct": "ct", "mri": "mri", "x-ray": "xray"}


@register_source("slake", tasks=("vqa",), modality="radiology", licence="CC BY 4.0",
                 url="https://www.med-vqa.com/slake/ (HF BoKelvin/SLAKE)", splits={"test": 2_094})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the SLAKE folder (test.json, imgs/) or one of its json files")
    split = {"validation": "validate", None: "test"}.get(split, split)
    path = find_file(raw, [f"{split}.json", f"Slake1.0/{split}.json"], f"SLAKE {split}.json")
    root = path.parent
    for i, row in enumerate(read_rows(path)):
        with drops.guard(f"{path.name}[{i}]"):
            if not keep(row, drops, f"{path.name}[{i}]", ("question", "answer", "img_name", "answer_type")):
                continue
            lang = row.get("q_lang", "en")
            yield vqa_record(
                rid=f"slake/{split}/{row.get('qid', i)}", source="slake", split=split,
                modality=_MODALITY.get(str(row.get("modality", "")).lower(), "other"),
                images=[str((root / "imgs" / row["img_name"]).resolve())], question=row["question"],
                answer=str(row["answer"]), closed=str(row["answer_type"]).upper() == "CLOSED", lang=lang, prompt_by="answer_type",
                meta={k: row.get(k) for k in ("qid", "img_id", "location", "modality", "content_type", "base_type", "answer_type")},
            )
