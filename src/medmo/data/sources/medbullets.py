"""Medbullets (Chen et al., NAACL 2025, "Benchmarking LLMs on answering and explaining
challenging medical questions"): 308 USMLE Step 2/3-style questions from Medbullets.

Release format (github HanjieChen/ChallengeClinicalQA, medbullets/): `medbullets_op4.csv`
and `medbullets_op5.csv` with columns question, opa, opb, opc, opd, (ope), answer_idx
(letter), answer (text), explanation (and link in some versions). The Hugging Face
copies (`LangAGI-Lab/medbullets_op4`, `_op5`: same columns, parquet/save_to_disk) read the
same way. Registered as two sources, medbullets_op4 and medbullets_op5; each has one
split, "test" (308 questions). Licence: research use (questions (c) Medbullets; the repo
is CC BY-NC 4.0).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import choices_and_letter, find_file, keep, mcq_record, read_rows


def _convert(n_options: int, raw: Path, drops: Drops, split: str | None) -> Iterator[Record]:
    name = f"medbullets_op{n_options}"
    raw = require_path(raw, f"{name}.csv (github HanjieChen/ChallengeClinicalQA) or its folder")
    split = split or "test"
    hf = raw.is_dir() and (any(raw.glob("**/*.parquet")) or (raw / "dataset_dict.json").exists())
    path = raw if hf else find_file(raw, [f"{name}.csv", f"medbullets/{name}.csv"], f"{name}.csv")
    keys = ("opa", "opb", "opc", "opd", "ope")[:n_options]
    for i, row in enumerate(read_rows(path, "train" if hf else split)):
        where = f"{path.name}:{i + 2}"
        with drops.guard(where):
            if not keep(row, drops, where, ("question", "answer_idx") + keys):
                continue
            if not (picked := choices_and_letter({L: row[k] for L, k in zip("ABCDE", keys)}, row["answer_idx"], drops,
                                                 where)):
                continue
            choices, letter = picked
            yield mcq_record(rid=f"{name}/{split}/{i}", source=name, split=split, question=row["question"],
                             choices=choices, letter=letter, meta={"explanation": row.get("explanation")})


@register_source("medbullets_op4", tasks=("mcq",), modality="text", licence="research use (questions (c) Medbullets)",
                 url="https://github.com/HanjieChen/ChallengeClinicalQA", splits={"test": 308})
def convert_op4(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    return _convert(4, Path(raw), drops, split)


@register_source("medbullets_op5", tasks=("mcq",), modality="text", licence="research use (questions (c) Medbullets)",
                 url="https://github.com/HanjieChen/ChallengeClinicalQA", splits={"test": 308})
def convert_op5(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    return _convert(5, Path(raw), drops, split)
