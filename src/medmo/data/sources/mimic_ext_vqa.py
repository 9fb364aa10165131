"""MIMIC-Ext-MIMIC-CXR-VQA (Bae et al., EHRXQA, NeurIPS 2023 Datasets & Benchmarks):
template-generated chest X-ray VQA (presence, anatomy, attribute, abnormality, plane,
gender, size questions) over MIMIC-CXR-JPG images with Chest ImaGenome labels.

Credentialed: PhysioNet (`mimic-ext-mimic-cxr-vqa`, Credentialed Health Data License
1.5.0) or built with github baeseongsu/mimic-cxr-vqa's script from MIMIC-CXR-JPG. No real
row is in this project: the test fixture is made up in the layout the repository's
README documents ("Dataset Structure" and "Dataset Description").
Release layout: `dataset/train.json`, `dataset/valid.json`, `dataset/test.json` (and
`ans2idx.json`), each a JSON list of {split, idx, image_id, question, content_type,
semantic_type verify|choose|query, template, template_program, template_arguments,
answer, subject_id, study_id, image_path}; `answer` is a list of strings (joined with ", "
here; an empty list, a set question with no member, becomes "none") and
`image_path` is relative to MIMIC-CXR-JPG (`files/p10/p10000032/s5.../<dicom>.jpg`, with or
without the leading `files/`). Point `raw` at the folder holding `dataset/` (or at
`dataset/`); images are looked up under `image_root` (default: `raw`, where a `files`
link to MIMIC-CXR-JPG's files/ belongs).
Splits: train, valid, test (the release's own; split=None converts all three). A
"verify" or "choose" question is closed, a "query" open.
Overlap: the images are MIMIC-CXR's; run `medmo data overlap` against the mimic_cxr
benchmark before training (its test studies must not come back through this set).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import keep, read_rows, vqa_record

SPLITS = ("train", "valid", "test")


def answer_text(answer) -> str:
    """The release's answer list as one string ([] -> "none": a set question with no member)."""
    if isinstance(answer, list):
        return ", ".join(str(a).strip() for a in answer) if answer else "none"
    return str(answer).strip()


@register_source("mimic_ext_vqa", tasks=("vqa",), modality="xray", licence="PhysioNet Credentialed Health Data 1.5.0",
                 url="https://physionet.org/content/mimic-ext-mimic-cxr-vqa/ (github baeseongsu/mimic-cxr-vqa)")
def convert(raw: Path, drops: Drops, split: str | None = None, image_root: Path | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the MIMIC-Ext-MIMIC-CXR-VQA folder (dataset/train.json, valid.json, test.json)")
    if split not in (None, *SPLITS):
        raise ValueError(f"MIMIC-Ext-VQA splits are {', '.join(SPLITS)}, not {split!r}")
    folder = raw / "dataset" if (raw / "dataset").is_dir() else raw
    images = Path(image_root) if image_root else (raw if folder != raw else raw.parent)
    files = [(sp, folder / f"{sp}.json") for sp in ([split] if split else SPLITS)]
    if not any(p.exists() for _, p in files):
        raise FileNotFoundError(f"{folder}: no {', '.join(p.name for _, p in files)}; expected MIMIC-Ext-VQA's dataset/")
    for sp, path in files:
        if not path.exists():
            continue
        for i, row in enumerate(read_rows(path)):
            where = f"{path.name}[{i}]"
            with drops.guard(where):
                if not keep(row, drops, where, ("question", "image_path")):
                    continue
                if row.get("answer") is None:  # the pre-release _train.json has no answers
                    drops.add("missing_field", f"{where}: no answer (the answer-generation script was not run)")
                    continue
                rel = Path(row["image_path"])
                rel = rel if rel.parts[0] == "files" else Path("files") / rel
                yield vqa_record(
                    rid=f"mimic_ext_vqa/{sp}/{row.get('idx', i)}", source="mimic_ext_vqa", split=sp, modality="xray",
                    images=[str((images / rel).resolve())], question=row["question"], answer=answer_text(row["answer"]),
                    closed=row.get("semantic_type") in ("verify", "choose"),
                    meta={k: row.get(k) for k in ("content_type", "semantic_type", "template_program", "study_id")})
