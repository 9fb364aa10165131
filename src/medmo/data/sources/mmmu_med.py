"""MMMU health & medicine subjects (Yue et al., CVPR 2024): college-exam questions with
one to seven images.

Release format: the Hugging Face dataset `MMMU/MMMU`, one config per subject; a hub
snapshot has `<Subject>/{dev,validation,test}-*.parquet` (a save_to_disk folder per
subject also works). Fields: id, question (with "<image k>" references), options (a
Python-literal list string), explanation, image_1 .. image_7 ({bytes, path} or null),
img_type, answer (a letter; free text for open questions), topic_difficulty,
question_type (multiple-choice | open), subfield. The five health subjects: Basic_Medical_
Science, Clinical_Medicine, Diagnostics_and_Laboratory_Medicine, Pharmacy, Public_Health.
Splits: dev (5/subject), validation (30/subject, 150 in all: what tables report), test
(answers withheld: rows without an answer are dropped as "no_answer").
Licence: Apache-2.0 (HF card); images from the web, research use.
Multiple-choice questions become task "mcq", open ones task "vqa" (open).

Layouts (`layout`): "medmo" (default) asks with medmo's generic multiple-choice frame and
every image; "mmmu" is MedEvalKit's MMMU protocol, the one behind MedMO's tables: MMMU's
own "(A) option" layout (medmo.model.prompts.mmmu_prompt) and the first image only
(MedEvalKit passes image_1; the question keeps its "<image k>" references). Records of
the "mmmu" layout carry meta.layout = "mmmu".
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.schema import IMAGE_TOKEN
from medmo.data.sources._qa import choices_and_letter, image_folder, keep, mcq_record, read_rows, save_image, vqa_record
from medmo.model.prompts import mmmu_prompt

SUBJECTS = ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine", "Pharmacy", "Public_Health")
LAYOUTS = ("medmo", "mmmu")


def mmmu_layout(record: Record, question: str, choices: dict[str, str] | None) -> Record:
    """`record` asked MedEvalKit's way: MMMU's layout, first image only (see the docstring)."""
    record.images = record.images[:1]
    prompt = "".join(f"{IMAGE_TOKEN}\n" for _ in record.images) + mmmu_prompt(question, choices)
    record.messages[0] = {"role": "user", "content": prompt}
    record.meta["layout"] = "mmmu"
    return record


@register_source("mmmu_med", tasks=("mcq", "vqa"), modality="mixed", licence="Apache-2.0",
                 url="https://huggingface.co/datasets/MMMU/MMMU", splits={"validation": 150})
def convert(raw: Path, drops: Drops, split: str | None = None, image_dir: Path | None = None,
            layout: str = "medmo") -> Iterator[Record]:
    if layout not in LAYOUTS:
        raise ValueError(f"mmmu_med: unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    raw = require_path(raw, "a MMMU/MMMU snapshot (one folder per subject with <split>-*.parquet)")
    split = split or "validation"
    subjects = [s for s in SUBJECTS if (raw / s).is_dir()] or ([raw.name] if raw.name in SUBJECTS else [])
    if not subjects:
        raise FileNotFoundError(f"{raw}: no subject folder ({', '.join(SUBJECTS)}) found")
    folder = image_folder("mmmu_med", image_dir)
    for subject in subjects:
        sub = raw / subject if (raw / subject).is_dir() else raw
        for i, row in enumerate(read_rows(sub, split)):
            where = f"{subject}/{split}[{i}]"
            with drops.guard(where):
                if not keep(row, drops, where, ("id", "question")):
                    continue
                if not str(row.get("answer") or "").strip() or str(row["answer"]) == "?":
                    drops.add("no_answer", where)
                    continue
                try:
                    images = [save_image(row[f"image_{k}"], folder, f"{row['id']}-{k}") for k in range(1, 8) if row.get(f"image_{k}")]
                except ValueError as e:
                    drops.add("bad_image", f"{where}: {e}")
                    continue
                meta = {"subject": subject, "subfield": row.get("subfield"), "topic_difficulty": row.get("topic_difficulty"),
                        "img_type": row.get("img_type"), "mmmu_id": row["id"]}
                rid = f"mmmu_med/{split}/{row['id']}"
                if row.get("question_type", "multiple-choice") == "multiple-choice":
                    try:
                        options = ast.literal_eval(row["options"]) if isinstance(row["options"], str) else row["options"]
                    except (ValueError, SyntaxError) as e:
                        drops.add("bad_options", f"{where}: {e}")
                        continue
                    if not (picked := choices_and_letter(options, row["answer"], drops, where)):
                        continue
                    choices, letter = picked
                    record = mcq_record(rid=rid, source="mmmu_med", split=split, modality="mixed", images=images,
                                        question=row["question"], choices=choices, letter=letter, meta=meta)
                else:
                    choices = None
                    record = vqa_record(rid=rid, source="mmmu_med", split=split, modality="mixed", images=images,
                                        question=row["question"], answer=str(row["answer"]), closed=False, meta=meta)
                yield mmmu_layout(record, row["question"], choices) if layout == "mmmu" else record
