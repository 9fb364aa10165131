"""VQA-RAD (Lau et al., Scientific Data 2018): radiology VQA over MedPix images.

Release formats read:
- the MEVF/aioz-ai folder that most papers use: `testset.json` / `trainset.json` (lists of
  {qid, image_name, image_organ, answer, answer_type CLOSED|OPEN, question_type,
  question, phrase_type}) next to `images/synpicNNNNN.jpg`;
- the Hugging Face copy `flaviagiammarino/vqa-rad` (parquet shards `data/test-*.parquet`
  or a save_to_disk folder; fields image, question, answer). It has no answer_type, so a
  question is closed when its answer is yes/no, the rule MedEvalKit applies.
Splits: train (1797 questions in the MEVF split), test (451: 272 closed / 179 open).
Licence: CC0 1.0 (osf.io/89kps); images are MedPix teaching images (NLM).
Image paths are stored absolute; their existence is checked at evaluation time, where a
missing image is counted, so questions can be converted before the images arrive.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import embedded_image_rows, is_hf_folder, keep, read_rows, vqa_record, yes_no_closed


@register_source("vqa_rad", tasks=("vqa",), modality="radiology")
def convert(raw: Path, drops: Drops, split: str | None = None, image_dir: Path | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the VQA-RAD folder (testset.json + images/) or its Hugging Face copy")
    split = split or "test"
    mevf = raw if raw.is_file() else raw / f"{split}set.json"
    if mevf.exists():
        root = mevf.parent
        for i, row in enumerate(read_rows(mevf)):
            with drops.guard(f"{mevf.name}[{i}]"):
                if not keep(row, drops, f"{mevf.name}[{i}]", ("question", "answer", "image_name")):
                    continue
                closed = str(row.get("answer_type", "")).strip().upper() == "CLOSED" if row.get("answer_type") else yes_no_closed(str(row["answer"]))
                yield vqa_record(
                    rid=f"vqa_rad/{split}/{row.get('qid', i)}", source="vqa_rad", split=split, modality="radiology",
                    images=[str((root / "images" / row["image_name"]).resolve())], question=row["question"],
                    answer=str(row["answer"]), closed=closed,
                    meta={k: row.get(k) for k in ("qid", "image_organ", "question_type", "phrase_type", "answer_type")},
                )
        return
    if not (is_hf_folder(raw) or any(raw.glob("**/*.parquet"))):
        raise FileNotFoundError(f"{raw}: expected {split}set.json (MEVF release) or the flaviagiammarino/vqa-rad parquet/save_to_disk copy")
    for i, row, path in embedded_image_rows(raw, split, "vqa_rad", drops, image_dir):
        with drops.guard(f"{split}[{i}]"):
            yield vqa_record(rid=f"vqa_rad/{split}/{i}", source="vqa_rad", split=split, modality="radiology",
                             images=[path], question=row["question"], answer=str(row["answer"]),
                             closed=yes_no_closed(str(row["answer"])))
