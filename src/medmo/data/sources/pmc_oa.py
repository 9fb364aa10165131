"""PMC-OA (Lin et al., PMC-CLIP, MICCAI 2023): 1.6M sub-figure/caption pairs from PubMed
Central, for captioning and image-text retrieval.

Release format read (Hugging Face `axiong/pmc_oa`): JSON-lines metadata, either
`pmc_oa.jsonl` (all pairs, no split; PMC-OA-Beta's `pmc_oa_beta.jsonl` has whole,
undivided captions) or the earlier `train.jsonl` / `valid.jsonl` / `test.jsonl`; one
object per line: {"image": "PMC212319_Fig3_4.jpg", "caption": "...", "pmcid":
"PMC212319", "url_name": "1471-2121-4-13-3.jpg"} (pmcid/url_name optional). Images come
in images.zip: `images/<image>` or `caption_T060_filtered_top4_sep_v0_subfigures/<image>`.
Splits: train / valid / test from the split files; pmc_oa.jsonl converts as "train".
Records are task "caption"; retrieval uses the same records (see medmo.data.sources._report).
Licence: the figures and captions keep their articles' PMC open-access licences
(the dataset card lists research use).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import keep, read_rows
from medmo.data.sources._report import caption_record, first_existing

_IMAGE_DIRS = ("images", "caption_T060_filtered_top4_sep_v0_subfigures", ".")


@register_source("pmc_oa", tasks=("caption",), modality="mixed", licence="PMC open-access licences of the articles",
                 url="https://huggingface.co/datasets/axiong/pmc_oa")
def convert(raw: Path, drops: Drops, split: str | None = None, beta: bool = False) -> Iterator[Record]:
    raw = require_path(raw, "the PMC-OA folder (pmc_oa.jsonl or train/valid/test.jsonl, images/) or one .jsonl")
    if raw.is_file():
        files = [(split or ("train" if raw.stem.startswith("pmc_oa") else raw.stem), raw)]
    else:
        per_split = [(sp, raw / f"{sp}.jsonl") for sp in ([split] if split else ["train", "valid", "test"])]
        files = [(sp, p) for sp, p in per_split if p.exists()]
        whole = raw / ("pmc_oa_beta.jsonl" if beta else "pmc_oa.jsonl")
        if not files and whole.exists() and split in (None, "train"):
            files = [("train", whole)]
        if not files:
            raise FileNotFoundError(f"{raw}: expected {'pmc_oa_beta' if beta else 'pmc_oa'}.jsonl or {split or 'train'}.jsonl")
    for sp, path in files:
        root = path.parent
        for i, row in enumerate(read_rows(path)):
            with drops.guard(f"{path.name}:{i + 1}"):
                if not keep(row, drops, f"{path.name}:{i + 1}", ("image", "caption")):
                    continue
                name = str(row["image"])
                image = first_existing([root / d / name for d in _IMAGE_DIRS])
                yield caption_record(rid=f"pmc_oa/{sp}/{Path(name).stem}", source="pmc_oa", split=sp, image=image,
                                     caption=row["caption"], meta={k: row[k] for k in ("pmcid", "url_name") if row.get(k)})
