"""OmniMedVQA (Hu et al., CVPR 2024): 88,996 multiple-choice questions over 42 medical
image datasets, 12 modalities.

Release format (HF `foreverbeliever/OmniMedVQA`, OmniMedVQA.zip): `QA_information/
Open-access/<dataset>.json` and `QA_information/Restricted-access/<dataset>.json`, each a
list of {dataset, question_id, question_type, question, gt_answer, image_path
("Images/<dataset>/..."), option_A .. option_D (2-4 present), modality_type}; images under
`Images/`. The answer letter is the option equal to gt_answer. One file is known to use
`modality` instead of `modality_type`; both are read. Split: test only; "test" reads the
open-access part (what MedEvalKit and the MedMO paper evaluate), "restricted" the other.
Licence: per source dataset (open-access part: public datasets' licences; research use).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import keep, mcq_record, read_rows

_MODALITY = {"ct(computed tomography)": "ct", "mr (mag-netic resonance imaging)": "mri", "x-ray": "xray",
             "ultrasound": "ultrasound", "microscopy images": "microscopy", "fundus photography": "fundus",
             "dermoscopy": "dermoscopy", "endoscopy": "endoscopy", "oct (optical coherence tomography": "oct"}


@register_source("omnimedvqa", tasks=("mcq",), modality="mixed", licence="per source dataset (research use)",
                 url="https://huggingface.co/datasets/foreverbeliever/OmniMedVQA", splits={"test": 88_996})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the OmniMedVQA folder (QA_information/Open-access/*.json, Images/)")
    split = split or "test"
    part = "Restricted-access" if split == "restricted" else "Open-access"
    qa_dir = raw / "QA_information" / part
    if not qa_dir.is_dir():
        raise FileNotFoundError(f"{qa_dir} not found; expected the OmniMedVQA release folder holding QA_information/{part}/")
    for path in sorted(qa_dir.glob("*.json")):
        for i, row in enumerate(read_rows(path)):
            where = f"{path.name}[{i}]"
            with drops.guard(where):
                if not keep(row, drops, where, ("question", "gt_answer", "image_path", "option_A", "option_B")):
                    continue
                choices = {L: str(row[f"option_{L}"]).strip() for L in "ABCD" if row.get(f"option_{L}") not in (None, "")}
                letters = [L for L, t in choices.items() if t == str(row["gt_answer"]).strip()]
                if len(letters) != 1:
                    drops.add("answer_not_in_choices", where)
                    continue
                modality_type = row.get("modality_type", row.get("modality", "unknown"))
                yield mcq_record(
                    rid=f"omnimedvqa/{split}/{row.get('question_id', f'{path.stem}-{i}')}", source="omnimedvqa", split=split,
                    modality=_MODALITY.get(str(modality_type).lower(), "other"),
                    images=[str((raw / row["image_path"]).resolve())], question=row["question"], choices=choices,
                    letter=letters[0], meta={"dataset": row.get("dataset", path.stem), "question_type": row.get("question_type"),
                                             "modality_type": modality_type},
                )
