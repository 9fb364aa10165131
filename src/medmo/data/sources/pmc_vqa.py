"""PMC-VQA (Zhang et al., 2023): multiple-choice VQA on PubMed Central figures.

Release format (github xiaoman-zhang/PMC-VQA, HF `xmcmic/PMC-VQA`): CSV files
`train.csv`, `test.csv`, `test_2.csv` (the cleaned, human-checked test set that MedEvalKit
and most tables use) and `train_2.csv`, with columns Figure_path, Question, Answer,
Choice A .. Choice D (values written "A:text"), Answer_label (the letter) and split;
some versions carry `index` and `Caption` and no Answer_label (then the letter is read
from Answer, which is then "B:text", "B" alone, as in MedEvalKit's copy RadGenome/PMC-VQA,
or the option's text). Images are `images/<Figure_path>` (images.zip; older zips unpack to
`figures/`). Splits: train, test (= test_2.csv, else test_clean.csv, the 2,000-question
cleaned set; the pmc_vqa benchmark says which counts are checked), "test_1" reads test.csv.
Licence: CC BY-SA 4.0 (HF card).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import find_file, keep, mcq_record, read_rows

_FILES = {"test": ["test_2.csv", "test_clean.csv", "test.csv"], "test_1": ["test.csv"], "train": ["train_2.csv", "train.csv"]}


def _choice(value: str, letter: str) -> str:
    return re.sub(rf"^\s*{letter}\s*[:.]\s*", "", str(value)).strip()


@register_source("pmc_vqa", tasks=("mcq",), modality="mixed", licence="CC BY-SA 4.0",
                 url="https://huggingface.co/datasets/xmcmic/PMC-VQA", splits={"test": 2_000})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the PMC-VQA folder (test_2.csv, images/) or one of its CSV files")
    split = split or "test"
    path = find_file(raw, _FILES.get(split, [f"{split}.csv"]), f"PMC-VQA {split} CSV")
    root = path.parent
    image_root = root / "images" if (root / "images").exists() or not (root / "figures").exists() else root / "figures"
    for i, row in enumerate(read_rows(path)):
        with drops.guard(f"{path.name}:{i + 2}"):
            if not keep(row, drops, f"{path.name}:{i + 2}", ("Figure_path", "Question", "Choice A", "Choice B")):
                continue
            choices = {L: _choice(row[f"Choice {L}"], L) for L in "ABCD" if str(row.get(f"Choice {L}") or "").strip()}
            letter = str(row.get("Answer_label") or "").strip().upper()
            if letter not in choices:
                answer = str(row.get("Answer") or "").strip()
                head = re.match(r"^\(?([A-D])\)?\s*(?:[:.]|$)", answer)  # "B", "(B)", "B:", "B: text"
                texts = [L for L, t in choices.items() if t.lower() == _choice(answer, "[A-D]").lower()]
                letter = head.group(1) if head else (texts[0] if len(texts) == 1 else "")
            if letter not in choices:
                drops.add("answer_not_in_choices", f"{path.name}:{i + 2}")
                continue
            yield mcq_record(rid=f"pmc_vqa/{split}/{row.get('index') or i}", source="pmc_vqa", split=split, modality="mixed",
                             images=[str((image_root / row["Figure_path"]).resolve())], question=row["Question"],
                             choices=choices, letter=letter, meta={"figure": row["Figure_path"]})
