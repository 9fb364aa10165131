"""MMLU medical subjects (Hendrycks et al., ICLR 2021): four-option exam questions.

MedEvalKit's MMLU-Med is nine subjects: anatomy, clinical_knowledge, college_biology,
college_medicine, medical_genetics, professional_medicine, nutrition, virology,
high_school_biology (test split: 1,871 questions). Release formats read:
- the original `data/test/<subject>_test.csv` (no header: question, A, B, C, D, answer);
- Hugging Face `cais/mmlu`: `<subject>/test-*.parquet` (question, subject, choices
  [4], answer 0-3), or save_to_disk folders;
- the MedAgents jsonl (`test.jsonl`: question, options {A..D}, answer_idx, subject),
  which covers six of the nine subjects.
Splits: dev (5/subject), validation, test. Licence: MIT.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, csv_rows, register_source, require_path
from medmo.data.sources._qa import LETTERS, choices_and_letter, keep, mcq_record, read_rows

SUBJECTS = ("anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
            "professional_medicine", "nutrition", "virology", "high_school_biology")


def _rows(raw: Path, split: str) -> Iterator[tuple[str, dict]]:
    """(location, row) with row normalized to question/choices/letter/subject."""
    if raw.is_file() and raw.suffix == ".jsonl":
        for i, row in enumerate(read_rows(raw)):
            yield f"{raw.name}:{i + 1}", {**row, "choices": row.get("options"), "letter": row.get("answer_idx")}
        return
    csv_dir = raw / "data" / split if (raw / "data" / split).is_dir() else raw / split
    for subject in SUBJECTS:
        csv_file = csv_dir / f"{subject}_{split}.csv"
        hf_dir = raw / subject
        if csv_file.exists():
            import csv

            with csv_file.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
                for i, cols in enumerate(csv_rows(csv.reader(f), csv_file.name)):
                    if len(cols) != 6:
                        yield f"{csv_file.name}:{i + 1}", {"_malformed": f"{csv_file.name}:{i + 1}"}
                        continue
                    yield f"{csv_file.name}:{i + 1}", {"question": cols[0], "choices": cols[1:5], "letter": cols[5], "subject": subject}
        elif hf_dir.is_dir():
            for i, row in enumerate(read_rows(hf_dir, split)):
                ans = row.get("answer")
                yield f"{subject}/{split}[{i}]", {**row, "subject": subject,
                                                   "letter": LETTERS[ans] if isinstance(ans, int) and 0 <= ans < 4 else None}


@register_source("mmlu_med", tasks=("mcq",), modality="text", licence="MIT",
                 url="https://github.com/hendrycks/test (HF cais/mmlu)", splits={"test": 1_871})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "MMLU (data/test/*_test.csv, a cais/mmlu snapshot, or a MedAgents test.jsonl)")
    split = split or "test"
    if raw.is_dir() and (raw / "test.jsonl").exists() and not any((raw / s).is_dir() for s in SUBJECTS):
        raw = raw / "test.jsonl"
    n = 0
    for where, row in _rows(raw, split):
        with drops.guard(where):
            if not keep(row, drops, where, ("question", "choices", "letter")):
                continue
            if row.get("subject") not in SUBJECTS:
                drops.add("not_a_medical_subject", f"{where}: {row.get('subject')}")
                continue
            if not (picked := choices_and_letter(row["choices"], row["letter"], drops, where)):
                continue
            choices, letter = picked
            yield mcq_record(rid=f"mmlu_med/{split}/{row['subject']}/{row.get('realidx', n)}", source="mmlu_med", split=split,
                             question=row["question"], choices=choices, letter=letter, meta={"subject": row["subject"]})
            n += 1
    if n == 0 and not drops.total:
        raise FileNotFoundError(f"{raw}: no MMLU medical-subject {split} data found")
