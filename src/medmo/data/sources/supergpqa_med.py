"""SuperGPQA, medicine discipline (M-A-P, 2025): graduate-level multiple choice with up
to ten options, 285 disciplines; medmo keeps discipline == "Medicine" (2,755 questions),
as MedEvalKit does.

Release format: Hugging Face `m-a-p/SuperGPQA` — `SuperGPQA-all.jsonl` (one "train"
split) with uuid, question, options [texts], answer (text), answer_letter, discipline,
field, subfield, difficulty (easy|middle|hard), is_calculation; a parquet or
save_to_disk copy reads the same way. Split: test (the single released split; "train" is
accepted as its HF name). Licence: ODC-BY (HF card).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import choices_and_letter, find_file, keep, mcq_record, read_rows


@register_source("supergpqa_med", tasks=("mcq",), modality="text", licence="ODC-BY",
                 url="https://huggingface.co/datasets/m-a-p/SuperGPQA", splits={"test": 2_755})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "SuperGPQA-all.jsonl (HF m-a-p/SuperGPQA) or its folder")
    hf = raw.is_dir() and (any(raw.glob("**/*.parquet")) or (raw / "dataset_dict.json").exists())
    path = raw if hf else find_file(raw, ["SuperGPQA-all.jsonl", "*.jsonl"], "SuperGPQA-all.jsonl")
    for i, row in enumerate(read_rows(path, "train")):
        where = f"{path.name}:{i + 1}"
        with drops.guard(where):
            if "_malformed" not in row and row.get("discipline") != "Medicine":
                continue
            if not keep(row, drops, where, ("question", "options", "answer_letter")):
                continue
            if not (picked := choices_and_letter(list(row["options"]), row["answer_letter"], drops, where)):
                continue
            choices, letter = picked
            yield mcq_record(rid=f"supergpqa_med/test/{row.get('uuid', i)}", source="supergpqa_med", split="test",
                             question=row["question"], choices=choices, letter=letter,
                             meta={k: row.get(k) for k in ("field", "subfield", "difficulty", "is_calculation")})
