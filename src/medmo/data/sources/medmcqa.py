"""MedMCQA (Pal et al., CHIL 2022): Indian medical entrance exam questions, four options.

Release formats read:
- the original release `train.json` / `dev.json` / `test.json` (JSON lines: id, question,
  opa..opd, cop 1-4, choice_type single|multi, exp, subject_name, topic_name);
- Hugging Face `openlifescienceai/medmcqa` (parquet `data/validation-*.parquet` or
  save_to_disk): the same fields with cop 0-3;
- the MedXpertQA evaluation input `medmcqa_input.jsonl` (id, question with
  "\nAnswer Choices: (A) .. (D) ..", label ["A"], subject_name): all 4,183 validation
  items, which is what MedEvalKit evaluates;
- the MedAgents `test.jsonl` (question, options {A..D}, answer_idx): the 2,816
  single-answer validation items.
Splits: train 182,822; validation 4,183 ("dev" in the original release); test 6,150
(answers withheld there: rows without one are dropped as "no_answer"). Licence: MIT.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import LETTERS, choices_and_letter, find_file, jsonl_rows, keep, mcq_record, read_rows

_INLINE = re.compile(r"\(([A-D])\)\s*(.*?)(?=\s*\([A-D]\)\s|$)", re.S)


def _normalize(row: dict, zero_based: bool) -> dict | None:
    """question / choices / letter / subject from any of the four layouts."""
    if "opa" in row:
        cop = row.get("cop")
        if cop in (None, "", -1):
            return {"question": row.get("question"), "choices": None, "letter": None}
        idx = int(cop) - (0 if zero_based else 1)
        return {"question": row["question"], "choices": [row.get(k) for k in ("opa", "opb", "opc", "opd")],
                "letter": LETTERS[idx] if 0 <= idx < 4 else "?", "subject": row.get("subject_name"),
                "topic": row.get("topic_name"), "choice_type": row.get("choice_type"), "mid": row.get("id")}
    if "label" in row and "Answer Choices:" in str(row.get("question", "")):
        stem, _, opts = row["question"].rpartition("Answer Choices:")
        label = row["label"][0] if isinstance(row["label"], list) else row["label"]
        return {"question": stem.strip(), "choices": dict(_INLINE.findall(opts.strip())), "letter": label,
                "subject": row.get("subject_name"), "topic": row.get("topic_name"), "mid": row.get("id")}
    return {"question": row.get("question"), "choices": row.get("options"), "letter": row.get("answer_idx"),
            "mid": row.get("realidx")}


@register_source("medmcqa", tasks=("mcq",), modality="text", licence="MIT",
                 url="https://github.com/medmcqa/medmcqa (HF openlifescienceai/medmcqa)",
                 splits={"train": 182_822, "validation": 4_183, "test": 6_150})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "MedMCQA (dev.json, an openlifescienceai/medmcqa snapshot, or medmcqa_input.jsonl)")
    split = {"dev": "validation", None: "validation"}.get(split, split)
    hf = raw.is_dir() and (any(raw.glob("**/*.parquet")) or (raw / "dataset_dict.json").exists())
    if hf:
        path, rows, zero_based = raw, read_rows(raw, split), True
    else:
        names = {"validation": ["full_validation/medmcqa_input.jsonl", "medmcqa_input.jsonl", "dev.json", "test.jsonl"],
                 "train": ["train.json"], "test": ["test.json"]}.get(split, [f"{split}.json"])
        path = find_file(raw, names, f"MedMCQA {split} data")
        rows = _jsonl(path)
        zero_based = False
    for i, row in enumerate(rows):
        where = f"{path.name}:{i + 1}"
        with drops.guard(where):
            if not keep(row, drops, where, ()):
                continue
            item = _normalize(row, zero_based)
            if item["letter"] is None:
                drops.add("no_answer", where)
                continue
            if not keep(item, drops, where, ("question", "choices", "letter")):
                continue
            if not (picked := choices_and_letter(item["choices"], item["letter"], drops, where)):
                continue
            choices, letter = picked
            yield mcq_record(rid=f"medmcqa/{split}/{item.get('mid') or i}", source="medmcqa", split=split,
                             question=item["question"], choices=choices, letter=letter,
                             meta={k: item.get(k) for k in ("subject", "topic", "choice_type")})


def _jsonl(path: Path) -> Iterator[dict]:
    """The original release names its JSON-lines files *.json; read them line by line."""
    if path.suffix == ".json":
        with path.open("rb") as f:
            starts_list = f.read(4096).lstrip().startswith(b"[")
        yield from read_rows(path) if starts_list else jsonl_rows(path)
        return
    yield from read_rows(path)
