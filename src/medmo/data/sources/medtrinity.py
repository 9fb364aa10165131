"""MedTrinity-25M (Xie et al., 2024): multigranular image descriptions across 10 modalities.

Release format read (Hugging Face `UCSC-VLAA/MedTrinity-25M`, configs `25M_demo` and
`25M_full`): parquet shards (`data/train-*.parquet` or `<config>/train-*.parquet`) or a
`save_to_disk` folder, columns `image` (embedded image, written once under `image_dir`
or $MEDMO_CACHE/images/medtrinity) or an image path/`file_name` relative to `raw`,
`id`, `caption` (the multigranular text: modality, organ/region, lesion, location,
what it suggests), optionally `source`/`modality`. Only a "train" split is published.
MedMO reports MedTrinity under report generation, so records are task "report" with the
caption as answer.text (no findings/impression split) and medmo's MEDTRINITY prompt.
Licence: per the dataset card (research use; images keep their source datasets'
licences).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import image_folder, is_hf_folder, keep, read_rows, save_image
from medmo.data.sources._report import caption_record, clean
from medmo.model import prompts


def _image(row: dict, root: Path, folder: Path, stem: str) -> str:
    value = row.get("image") if row.get("image") is not None else row.get("file_name")
    if isinstance(value, str):
        return str((root / value).resolve())
    return save_image(value, folder, stem)


@register_source("medtrinity", tasks=("report",), modality="mixed", licence="research use (dataset card)",
                 url="https://huggingface.co/datasets/UCSC-VLAA/MedTrinity-25M")
def convert(raw: Path, drops: Drops, split: str | None = None, image_dir: Path | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the MedTrinity-25M Hugging Face folder (parquet shards or save_to_disk) or one parquet/jsonl file")
    split = split or "train"
    if raw.is_dir() and not is_hf_folder(raw) and not list(raw.glob("**/*.parquet")):
        raise FileNotFoundError(f"{raw}: expected MedTrinity-25M parquet shards (data/train-*.parquet) or a save_to_disk folder")
    root = raw if raw.is_dir() else raw.parent
    folder = image_folder("medtrinity", image_dir)
    for i, row in enumerate(read_rows(raw, split)):
        where = f"row {i}"
        with drops.guard(where):
            if not keep(row, drops, where, ("caption",)):
                continue
            if row.get("image") is None and not row.get("file_name"):
                drops.add("missing_field", f"{where}: no image")
                continue
            rid = str(row.get("id") or i)
            try:
                image = _image(row, root, folder, f"{split}-{i}")
            except ValueError as e:
                drops.add("bad_image", f"{where}: {e}")
                continue
            modality = clean(row.get("modality")).lower() or "mixed"
            yield caption_record(rid=f"medtrinity/{split}/{rid}", source="medtrinity", split=split, image=image,
                                 caption=row["caption"], modality=modality, prompt=prompts.MEDTRINITY, task="report",
                                 meta={"id": rid, "origin": clean(row.get("source"))})
