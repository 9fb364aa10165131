"""PathVQA (He et al., 2020): pathology VQA from textbooks and the PEIR library.

Release format read: the Hugging Face copy `flaviagiammarino/path-vqa` that MedEvalKit and
most papers use (parquet shards `data/{train,validation,test}-*.parquet`, or a folder
written by `save_to_disk`; fields image {bytes, path}, question, answer). The original
release pickles (`qas/test/test_qa.pkl`) are not read: unpickling runs code, convert
them to the HF layout first. A question is closed when its answer is yes/no (PathVQA's
own definition). Splits: train 19,654, validation 6,259, test 6,719 questions.
Licence: MIT (HF card); images from PEIR and textbooks, research use.
Embedded images are written once to `image_dir` (default $MEDMO_CACHE/images/path_vqa).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import embedded_image_rows, vqa_record, yes_no_closed


@register_source("path_vqa", tasks=("vqa",), modality="pathology", licence="MIT",
                 url="https://huggingface.co/datasets/flaviagiammarino/path-vqa",
                 splits={"train": 19_654, "validation": 6_259, "test": 6_719})
def convert(raw: Path, drops: Drops, split: str | None = None, image_dir: Path | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the flaviagiammarino/path-vqa parquet folder (data/test-*.parquet) or save_to_disk folder")
    split = split or "test"
    for i, row, path in embedded_image_rows(raw, split, "path_vqa", drops, image_dir):
        with drops.guard(f"{split}[{i}]"):
            answer = str(row["answer"])
            yield vqa_record(rid=f"path_vqa/{split}/{i}", source="path_vqa", split=split, modality="pathology",
                             images=[path], question=row["question"], answer=answer, closed=yes_no_closed(answer))
