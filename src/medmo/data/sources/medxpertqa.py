"""MedXpertQA (Zuo et al., ICML 2025): expert-level medical multiple choice, a text-only
subset (10 options, A-J) and a multimodal subset (5 options, with images).

Release formats read (both in one file per subset):
- GitHub TsinghuaC3I/MedXpertQA `eval/data/medxpertqa/input/medxpertqa_{text,mm}_input.jsonl`:
  {id "Text-N"/"MM-N", question (ends with "Answer Choices: (A) .."), options
  [{letter, content}], label ["X"], images [{image_path}] (MM), medical_task,
  body_system, question_type Reasoning|Understanding};
- Hugging Face `TsinghuaC3I/MedXpertQA` `Text/test.jsonl`, `MM/test.jsonl` (or
  parquet/save_to_disk): options {"A": ..}, label "X", images [filename].
MM images are `images/<name>` next to the jsonl or one folder up (images.zip).
Registered as two sources, medxpertqa_text and medxpertqa_mm. Splits: dev (5 each),
test (Text 2,450, MM 2,000). The question is kept whole (choices included) and the
options are listed again, as MedEvalKit prompts it. Licence: MIT.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import choices_and_letter, find_file, keep, mcq_record, read_rows


def _convert(kind: str, raw: Path, drops: Drops, split: str | None) -> Iterator[Record]:
    name = f"medxpertqa_{kind}"
    raw = require_path(raw, f"the MedXpertQA {kind} jsonl or its folder")
    split = split or "test"
    sub = "Text" if kind == "text" else "MM"
    path = find_file(raw, [f"medxpertqa_{kind}_input.jsonl", f"{sub}/{split}.jsonl", f"{sub}/{split}-*.parquet",
                           f"medxpertqa_sampled_{kind}_input.jsonl", f"*{kind}*.jsonl"], f"MedXpertQA {sub} {split} data")
    image_roots = [path.parent / "images", path.parent.parent / "images"]
    for i, row in enumerate(read_rows(path)):
        where = f"{path.name}:{i + 1}"
        with drops.guard(where):
            if not keep(row, drops, where, ("question", "options", "label")):
                continue
            label = row["label"][0] if isinstance(row["label"], list) else row["label"]
            if not (picked := choices_and_letter(row["options"], label, drops, where)):
                continue
            choices, letter = picked
            images = []
            for img in row.get("images") or []:
                fname = img["image_path"] if isinstance(img, dict) else str(img)
                root = next((r for r in image_roots if (r / fname).exists()), image_roots[0])
                images.append(str((root / fname).resolve()))
            if kind == "mm" and not images:
                drops.add("no_image", where)
                continue
            yield mcq_record(rid=f"{name}/{split}/{row.get('id', i)}", source=name, split=split,
                             modality="mixed" if images else "text", images=images, question=row["question"],
                             choices=choices, letter=letter,
                             meta={k: row.get(k) for k in ("medical_task", "body_system", "question_type")})


@register_source("medxpertqa_text", tasks=("mcq",), modality="text", licence="MIT",
                 url="https://github.com/TsinghuaC3I/MedXpertQA", splits={"dev": 5, "test": 2_450})
def convert_text(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    return _convert("text", Path(raw), drops, split)


@register_source("medxpertqa_mm", tasks=("mcq",), modality="mixed", licence="MIT",
                 url="https://github.com/TsinghuaC3I/MedXpertQA", splits={"dev": 5, "test": 2_000})
def convert_mm(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    return _convert("mm", Path(raw), drops, split)
