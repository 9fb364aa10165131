"""Quilt-LLaVA instruction data (Seyfioglu et al., Quilt-LLaVA, CVPR 2024): 107k
histopathology conversations generated from Quilt-1M video narrations, with the
pathologist's cursor used to ground them.

Release layout (Hugging Face `wisdomik/QUILT-LLaVA-Instruct-107K`, file list in its card and
the github quilt-llava README "Visual Instruction Tuning"): `quilt_instruct_107k.json` (plus
quilt_instruct_ablation_40k.json, quilt_instruct_complex_abductive.json,
quilt_instruct_conv_desc.json), each a JSON list of LLaVA items {"id", "image":
"<video id>_roi_<...>.jpg", "conversations": [{"from": "human", "value": "<image>\\n..."},
{"from": "gpt", "value": ...}, ...]}. Images are Quilt-1M's: the training script points
`--image_folder` at `quilt_instruct/`; this converter looks in `quilt_instruct/`, `images/`,
`quilt_1m/`, then the JSON's own folder. Point `raw` at the folder or one JSON file;
`variant` picks the file in a folder ("107k" default, "ablation_40k", "complex_abductive",
"conv_desc"). One split, "train"; every conversation is one record with all its turns.
Licence: research use only (CC BY-NC-ND 3.0 per the dataset card; images under the
Quilt-1M terms).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._conversation import llava_records
from medmo.data.sources._qa import find_file

VARIANTS = ("107k", "ablation_40k", "complex_abductive", "conv_desc")
IMAGE_DIRS = ("quilt_instruct", "images", "quilt_1m")


@register_source("quilt_llava", tasks=("vqa",), modality="pathology", licence="CC BY-NC-ND 3.0 (research use)",
                 url="https://huggingface.co/datasets/wisdomik/QUILT-LLaVA-Instruct-107K", splits={"train": 107_131})
def convert(raw: Path, drops: Drops, split: str | None = None, variant: str = "107k") -> Iterator[Record]:
    raw = require_path(raw, "the Quilt-LLaVA folder (quilt_instruct_107k.json, quilt_instruct/) or one of its JSON files")
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: expected one of {', '.join(VARIANTS)}")
    if split not in (None, "train"):
        raise ValueError(f"Quilt-LLaVA has a train split only, not {split!r}")
    path = find_file(raw, [f"quilt_instruct_{variant}.json"], f"quilt_instruct_{variant}.json")
    root = next((path.parent / d for d in IMAGE_DIRS if (path.parent / d).is_dir()), path.parent)
    yield from llava_records(path, root, drops, source="quilt_llava", split="train", modality="pathology",
                             extra={"variant": path.stem.removeprefix("quilt_instruct_")})
