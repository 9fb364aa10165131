"""ROCOv2 (Rückert et al., Scientific Data 2024, arXiv:2405.10004): 79,789 radiology figures
from PMC open-access articles with captions and UMLS concepts, the ImageCLEFmedical
caption-task successor of ROCO, for captioning and image-text retrieval.

Release layouts read:
- the Zenodo release (linked from the paper): `train_captions.csv`, `valid_captions.csv`,
  `test_captions.csv` (columns ID, Caption; ID like "ROCOv2_2023_train_000001"),
  `*_concepts.csv` (ID, CUIs; not used), and the images in `train/`, `valid/`, `test/`
  (`<ID>.jpg`, from train.zip etc.); a CSV may also sit inside its image folder
  (`train/train_captions.csv`, as in the HF mirror sschet/ROCOv2-train). Point `raw` at
  the folder holding the CSVs or the split folders. This layout follows the paper and the
  ImageCLEFmedical caption files; the Zenodo file list itself was not read here.
- Hugging Face `eltorio/ROCOv2-radiology` (parquet `data/{train,validation,test}-*.parquet`;
  columns image (embedded), image_id, caption, cui), images written once under the
  image folder like the other HF copies.
Splits: train 59,958 / valid 9,904 / test 9,927 (the paper and the HF card; "validation" is accepted for
valid); split=None converts all three. ROCOv2 is no medmo benchmark, but its images are
PMC figures that ROCO, PMC-OA and PMC-VQA also hold: `medmo data overlap` against the
pmc_vqa benchmark before training. Records are task "caption", modality "radiology".
Licence: CC BY-NC-SA 4.0 (HF card); the images come only from articles licensed CC BY or
CC BY-NC (the paper's licence filter) and keep those licences.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import image_folder, keep, read_rows, save_image
from medmo.data.sources._report import caption_record

SPLITS = ("train", "valid", "test")
HF_SPLIT = {"train": "train", "valid": "validation", "test": "test"}


def _record(split: str, rid: str, image: str, caption: str) -> Record:
    return caption_record(rid=f"rocov2/{split}/{rid}", source="rocov2", split=split, image=image, caption=caption,
                          modality="radiology", meta={"rocov2_id": rid})


@register_source("rocov2", tasks=("caption",), modality="radiology", licence="CC BY-NC-SA 4.0",
                 url="https://huggingface.co/datasets/eltorio/ROCOv2-radiology (Zenodo: see arXiv:2405.10004)",
                 splits={"train": 59_958, "valid": 9_904, "test": 9_927})
def convert(raw: Path, drops: Drops, split: str | None = None, image_dir: Path | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the ROCOv2 folder (train_captions.csv, train/ ...) or its HF parquet copy")
    split = {"validation": "valid"}.get(split, split)
    if split not in (None, *SPLITS):
        raise ValueError(f"ROCOv2 splits are {', '.join(SPLITS)}, not {split!r}")
    splits = [split] if split else list(SPLITS)
    csvs = {sp: next((p for p in (raw / f"{sp}_captions.csv", raw / sp / f"{sp}_captions.csv") if p.exists()), None)
            for sp in splits}
    if any(csvs.values()):
        for sp, path in csvs.items():
            if path is None:
                continue
            for i, row in enumerate(read_rows(path)):
                where = f"{path.name}:{i + 2}"
                with drops.guard(where):
                    if keep(row, drops, where, ("ID", "Caption")):
                        yield _record(sp, row["ID"], str((raw / sp / f"{row['ID']}.jpg").resolve()), row["Caption"])
        return
    if not list(raw.glob("**/*.parquet")):
        raise FileNotFoundError(f"{raw}: expected <split>_captions.csv (Zenodo) or data/<split>-*.parquet (HF copy)")
    folder = image_folder("rocov2", image_dir)
    for sp in splits:
        for i, row in enumerate(read_rows(raw, HF_SPLIT[sp])):
            where = f"{sp}[{i}]"
            with drops.guard(where):
                if not keep(row, drops, where, ("image", "image_id", "caption")):
                    continue
                try:
                    image = save_image(row["image"], folder, f"{sp}-{row['image_id']}")
                except ValueError as e:
                    drops.add("bad_image", f"{where}: {e}")
                    continue
                yield _record(sp, row["image_id"], image, row["caption"])
