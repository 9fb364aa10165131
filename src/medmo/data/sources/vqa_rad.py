"""VQA-RAD (Lau et al., Scientific Data 2018): radiology VQA over MedPix images.

Release formats read:
- the official OSF release (osf.io/89kps): `VQA_RAD Dataset Public.json` (all 2,248
  questions; same fields plus image_case_url, question_rephrase, ...) next to
  `VQA_RAD Image Folder/`. Its split is in `phrase_type`: "test_freeform" / "test_para"
  mark the 451 test questions, "freeform" / "para" the 1,797 training ones; `--split
  train` never yields a test_* row (and `--split test` only those);
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


PUBLIC = "VQA_RAD Dataset Public.json"


@register_source("vqa_rad", tasks=("vqa",), modality="radiology", licence="CC0 1.0",
                 url="https://osf.io/89kps/ (HF flaviagiammarino/vqa-rad)", splits={"train": 1797, "test": 451})
def convert(raw: Path, drops: Drops, split: str | None = None, image_dir: Path | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the VQA-RAD folder (VQA_RAD Dataset Public.json or testset.json, images) or its HF copy")
    split = split or "test"
    public = raw if raw.name == PUBLIC else raw / PUBLIC
    mevf = public if public.exists() else raw if raw.is_file() else raw / f"{split}set.json"
    if mevf.exists():
        root = mevf.parent
        images = root / ("VQA_RAD Image Folder" if mevf.name == PUBLIC else "images")
        for i, row in enumerate(read_rows(mevf)):
            with drops.guard(f"{mevf.name}[{i}]"):
                if not keep(row, drops, f"{mevf.name}[{i}]", ("question", "answer", "image_name")):
                    continue
                if mevf.name == PUBLIC and str(row.get("phrase_type", "")).startswith("test_") != (split == "test"):
                    continue  # the official file holds both splits: phrase_type says which
                closed = str(row.get("answer_type", "")).strip().upper() == "CLOSED" if row.get("answer_type") else yes_no_closed(str(row["answer"]))
                yield vqa_record(
                    rid=f"vqa_rad/{split}/{row.get('qid', i)}", source="vqa_rad", split=split, modality="radiology",
                    images=[str((images / row["image_name"]).resolve())], question=row["question"],
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
