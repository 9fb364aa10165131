"""ROCO (Pelka et al., LABELS@MICCAI 2018): PubMed Central figures with captions, for
captioning and image-text retrieval.

Release formats read:
- the GitHub release (razorx89/roco-dataset) after `scripts/fetch.py`:
  `data/{train,validation,test}/{radiology,non-radiology}/` each with `captions.txt`
  (one "ROCO_00020<TAB>caption" per line), `dlinks.txt` ("ROCO_00020<TAB>wget ...
  <TAB>PMC4083729_AMHSR-4-14-g002.jpg": the image file name is the last field),
  keywords.txt, semtypes.txt, cuis.txt, and `images/` with the fetched files. Point
  `raw` at the folder holding train/validation/test (or at `data/`).
- the Hugging Face copy (e.g. `eltorio/ROCO-radiology`): parquet or save_to_disk with
  image (embedded), image_id, caption.
Splits: train 65,450 / validation 8,180 / test 8,176 radiology images (plus non-radiology
ones with `subset="non-radiology"` or `"all"`). Records are task "caption" with the
caption as answer.text; retrieval uses the same records (see medmo.data.sources._report).
Licence: captions/links CC BY-NC-SA 4.0 for research; each image keeps its article's
PMC open-access licence.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, check_utf8, register_source, require_path
from medmo.data.sources._qa import image_folder, is_hf_folder, keep, read_rows, save_image
from medmo.data.sources._report import caption_record, first_existing

_SUBSETS = {"radiology": ("radiology",), "non-radiology": ("non-radiology",), "all": ("radiology", "non-radiology")}


def _read_tsv(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.rstrip("\n").split("\t") for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines() if line.strip()]


def _github(folder: Path, split: str, subset: str, drops: Drops) -> Iterator[Record]:
    names = {row[0].strip(): row[-1].strip() for row in _read_tsv(folder / "dlinks.txt") if len(row) >= 2}
    for n, row in enumerate(_read_tsv(folder / "captions.txt"), 1):
        with drops.guard(f"{folder.name}/captions.txt:{n}"):
            check_utf8(row)
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                drops.add("malformed_row", f"{folder / 'captions.txt'}:{n}")
                continue
            rid, caption = row[0].strip(), "\t".join(row[1:])
            candidates = [folder / "images" / names[rid]] if rid in names else []
            candidates += [folder / "images" / f"{rid}.jpg"]
            yield caption_record(rid=f"roco/{split}/{rid}", source="roco", split=split, image=first_existing(candidates),
                                 caption=caption, modality="radiology" if subset == "radiology" else "mixed",
                                 meta={"roco_id": rid, "subset": subset})


@register_source("roco", tasks=("caption",), modality="radiology", licence="CC BY-NC-SA 4.0 (captions); images PMC OA",
                 url="https://github.com/razorx89/roco-dataset",
                 splits={"train": 65_450, "validation": 8_180, "test": 8_176})
def convert(raw: Path, drops: Drops, split: str | None = None, subset: str = "radiology",
            image_dir: Path | None = None) -> Iterator[Record]:
    raw = require_path(raw, "ROCO's data/ folder (train|validation|test/radiology/captions.txt) or its HF copy")
    if subset not in _SUBSETS:
        raise ValueError(f"subset={subset!r}: expected one of {', '.join(_SUBSETS)}")
    splits = [split] if split else ["train", "validation", "test"]
    base = raw / "data" if (raw / "data").is_dir() and not (raw / "train").exists() else raw
    found = [(sp, sub, base / sp / sub) for sp in splits for sub in _SUBSETS[subset] if (base / sp / sub / "captions.txt").exists()]
    if found:
        for sp, sub, folder in found:
            yield from _github(folder, sp, sub, drops)
        return
    if not (is_hf_folder(raw) or raw.is_file() or list(raw.glob("**/*.parquet"))):
        raise FileNotFoundError(f"{raw}: expected <split>/{subset}/captions.txt (GitHub release) or the HF parquet copy")
    folder = image_folder("roco", image_dir)
    for sp in splits if not raw.is_file() else [split or "test"]:
        for i, row in enumerate(read_rows(raw, sp)):
            with drops.guard(f"{sp} row {i}"):
                if not keep(row, drops, f"{sp} row {i}", ("image", "caption")):
                    continue
                rid = str(row.get("image_id") or i)
                try:
                    image = save_image(row["image"], folder, f"{sp}-{rid}")
                except ValueError as e:
                    drops.add("bad_image", f"{sp} row {i}: {e}")
                    continue
                yield caption_record(rid=f"roco/{sp}/{rid}", source="roco", split=sp, image=image, caption=row["caption"],
                                     modality="radiology", meta={"roco_id": rid, "subset": subset})
