"""Medical-Diff-VQA / MIMIC-Diff-VQA (Hu et al., KDD 2023): chest X-ray VQA over MIMIC-CXR
study pairs, including "what has changed" questions that compare a study with an earlier one.

Credentialed: PhysioNet (`medical-diff-vqa`, Credentialed Health Data License 1.5.0); the
images are MIMIC-CXR-JPG's. No real row is in this project: the test fixture is made up in
the layout documented by github Holipori/MIMIC-Diff-VQA (README "mimic_pair_questions.csv";
`code/get_mimic_all.py` for mimic_all.csv).
Release layout: `mimic_pair_questions.csv` with columns study_id, subject_id, ref_id (the
earlier study compared with), question_type (abnormality | location | level | view | type |
presence | difference), question, answer, split (train | val | test), and `mimic_all.csv`
(one row per study: subject_id, study_id, the CheXpert label columns, dicom_id (the study's
frontal image, PA/AP preferred), view, split, study_date, study_order). Point `raw` at the
folder holding both; images are `files/p<NN>/p<subject>/s<study>/<dicom_id>.jpg` under
`image_root` (default: `raw`, where a `files` link to MIMIC-CXR-JPG's files/ belongs).
Records: one per question. A "difference" question has two images, the reference
(earlier) study first and the current one second, and its question is prefixed with a
sentence saying so (the dataset's models get the pair as two inputs; a chat model needs
the order in words). Other questions see the current study only. A yes/no answer is closed.
Splits: train, val, test from the CSV (split=None converts all). A question whose study is
not in mimic_all.csv is counted ("unknown_study").
Overlap: the images are MIMIC-CXR's; run `medmo data overlap` against the mimic_cxr benchmark.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import find_file, keep, read_rows, vqa_record, yes_no_closed

SPLITS = ("train", "val", "test")
PAIR_PREFIX = "The first image is an earlier chest X-ray of this patient and the second the current one. "


@register_source("mimic_diff_vqa", tasks=("vqa",), modality="xray", licence="PhysioNet Credentialed Health Data 1.5.0",
                 url="https://physionet.org/content/medical-diff-vqa/ (github Holipori/MIMIC-Diff-VQA)")
def convert(raw: Path, drops: Drops, split: str | None = None, image_root: Path | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the Medical-Diff-VQA folder (mimic_pair_questions.csv, mimic_all.csv)")
    if split not in (None, *SPLITS):
        raise ValueError(f"MIMIC-Diff-VQA splits are {', '.join(SPLITS)}, not {split!r}")
    questions = find_file(raw, ["mimic_pair_questions.csv"], "mimic_pair_questions.csv")
    studies_csv = find_file(questions.parent, ["mimic_all.csv"], "mimic_all.csv (study -> frontal dicom_id)")
    root = Path(image_root) if image_root else questions.parent
    studies = {str(r.get("study_id")): r for r in read_rows(studies_csv) if isinstance(r, dict) and r.get("dicom_id")}

    def image(study: str) -> str:
        r = studies[study]
        subject = str(r["subject_id"])
        return str((root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{r['dicom_id']}.jpg").resolve())

    for i, row in enumerate(read_rows(questions)):
        where = f"{questions.name}:{i + 2}"
        with drops.guard(where):
            if not keep(row, drops, where, ("study_id", "question", "answer", "question_type", "split")):
                continue
            if split and row["split"] != split:
                continue
            study, ref = str(row["study_id"]), str(row.get("ref_id") or "")
            pair = row["question_type"] == "difference"
            if study not in studies or (pair and ref not in studies):
                drops.add("unknown_study", f"{where}: study {study if study not in studies else ref}")
                continue
            yield vqa_record(
                rid=f"mimic_diff_vqa/{row['split']}/{i}", source="mimic_diff_vqa", split=row["split"], modality="xray",
                images=[image(ref), image(study)] if pair else [image(study)],
                question=(PAIR_PREFIX if pair else "") + row["question"], answer=str(row["answer"]),
                closed=yes_no_closed(str(row["answer"])),
                meta={"question_type": row["question_type"], "study_id": study, "ref_id": ref or None})
