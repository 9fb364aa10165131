"""MedQA-USMLE (Jin et al., 2021): US medical licensing exam questions, English part.

Release format (github jind11/MedQA, data_clean/questions/US/): JSON lines
`test.jsonl` / `dev.jsonl` / `train.jsonl` with five options (question, answer (text),
options {A..E}, meta_info step1|step2&3, answer_idx) and `4_options/
phrases_no_exclude_{test,dev,train}.jsonl` with four (plus metamap_phrases). The
Hugging Face copies `GBaker/MedQA-USMLE-4-options` (parquet/save_to_disk, same fields)
and the MedAgents `test.jsonl` (+ realidx) are read the same way. Which variant a file
is follows from its options; `meta.n_options` records it (the medqa benchmark uses the
4-option test). Splits: train 10,178; dev 1,272; test 1,273. Licence: MIT.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import choices_and_letter, find_file, keep, mcq_record, read_rows


@register_source("medqa", tasks=("mcq",), modality="text", licence="MIT", url="https://github.com/jind11/MedQA",
                 splits={"train": 10_178, "dev": 1_272, "test": 1_273})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "a MedQA-USMLE jsonl file or its folder (test.jsonl, 4_options/, or a GBaker/MedQA parquet copy)")
    split = split or "test"
    hf = raw.is_dir() and (any(raw.glob(f"**/{split}-*.parquet")) or (raw / "dataset_dict.json").exists())
    path = raw if hf else find_file(raw, [f"{split}.jsonl", f"phrases_no_exclude_{split}.jsonl",
                                          f"4_options/phrases_no_exclude_{split}.jsonl"], f"MedQA {split}.jsonl")
    for i, row in enumerate(read_rows(path, split)):
        where = f"{path.name}:{i + 1}"
        with drops.guard(where):
            if not keep(row, drops, where, ("question", "options", "answer_idx")):
                continue
            if not (picked := choices_and_letter(row["options"], row["answer_idx"], drops, where)):
                continue
            choices, letter = picked
            yield mcq_record(rid=f"medqa/{split}/{len(choices)}opt/{row.get('realidx', i)}", source="medqa", split=split,
                             question=row["question"], choices=choices, letter=letter,
                             meta={"n_options": len(choices), "meta_info": row.get("meta_info")})
