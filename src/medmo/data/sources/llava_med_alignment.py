"""LLaVA-Med alignment data (Li et al., LLaVA-Med, NeurIPS 2023 Datasets & Benchmarks):
PMC-15M figure/caption pairs posed as "describe the image" conversations, LLaVA-Med's
stage-1 concept alignment set.

Release layout (github microsoft/LLaVA-Med README "Data Download" and its
`download_data.sh`): `data/alignment/llava_med_alignment_500k.json`, a JSON list of LLaVA
items {"id", "image": "<pmcid>_<figure>.jpg", "conversations": [{"from": "human", "value":
"<image>\\n<a describe-the-image instruction>"}, {"from": "gpt", "value": "<the caption>"}]},
and the images that `llava/data/download_images.py` fetches from PMC into `data/images/`.
Point `raw` at LLaVA-Med's `data/` folder (alignment/ and images/ inside it) or at the JSON
(then images are looked up in `images/` beside it, else in `../images/`, which
`medmo data convert` refuses as outside the release unless `--allow-outside-images`).
One split, "train"; the catalogue's count (500k) is the file name's, not a verified count.
Records are task "caption": one user turn, one assistant caption (multi-turn items stay multi-turn).
Licence: the annotations are released for research use only under LLaVA-Med's terms
(CC BY-NC 4.0 data licence in the repository); images keep their PMC articles' licences.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._conversation import llava_records
from medmo.data.sources._qa import find_file


def image_root(json_path: Path) -> Path:
    """LLaVA-Med keeps images in data/images/, a sibling of data/alignment/ and data/instruct/."""
    here = json_path.parent / "images"
    return here if here.is_dir() or not (json_path.parent.parent / "images").is_dir() else json_path.parent.parent / "images"


@register_source("llava_med_alignment", tasks=("caption",), modality="mixed", licence="CC BY-NC 4.0 (research use)",
                 url="https://github.com/microsoft/LLaVA-Med#data-download", splits={"train": 500_000})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "LLaVA-Med's data/ folder (alignment/llava_med_alignment_500k.json, images/) or that JSON")
    if split not in (None, "train"):
        raise ValueError(f"LLaVA-Med alignment has a train split only, not {split!r}")
    path = find_file(raw, ["llava_med_alignment_500k.json", "alignment/llava_med_alignment_500k.json"],
                     "llava_med_alignment_500k.json")
    yield from llava_records(path, image_root(path), drops, source="llava_med_alignment", split="train",
                             modality="mixed", task="caption")
