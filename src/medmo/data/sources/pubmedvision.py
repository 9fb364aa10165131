"""PubMedVision (Chen et al., HuatuoGPT-Vision, arXiv:2406.19280): 1.3M medical VQA
conversations that GPT-4V wrote from PubMed figure/caption pairs.

Release layout (Hugging Face `FreedomIntelligence/PubMedVision`, read from its dataset card
and the JSON the card's configs name): `PubMedVision_Alignment_VQA.json` and
`PubMedVision_InstructionTuning_VQA.json`, each a JSON list of LLaVA items
{"id", "image": ["images/pmc_..._0.jpg", ...], "conversations": [{"from": "human", "value":
"<image>\\n..."}, {"from": "gpt", "value": ...}], "modality": "Computed Tomography",
"body_part": "Chest"} (modality/body_part added 2024-07-01 by HuatuoGPT-Vision-7B), and
`images_0.zip` .. `images_19.zip`, unpacked with `unzip -j` into `images/`; image paths are
relative to the release folder. Point `raw` at that folder (or one of the two JSON files).
Parts: `part="alignment"` (647,031 items, stage-1 image-description pairs), `"instruct"`
(647,031, multi-turn questions), `"all"` (both; the default). There is no test split: the
whole release is "train". Items with several images keep them all (one "<image>" each).
The free-text modality is mapped to medmo's names (`_conversation.modality_from_text`);
body_part stays in meta for `medmo data stats`.
Licence: Apache-2.0 (dataset card); the figures come from PMC open-access articles.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._conversation import llava_records

PARTS = {"alignment": "PubMedVision_Alignment_VQA.json", "instruct": "PubMedVision_InstructionTuning_VQA.json"}


@register_source("pubmedvision", tasks=("vqa",), modality="mixed", licence="Apache-2.0",
                 url="https://huggingface.co/datasets/FreedomIntelligence/PubMedVision",
                 splits={"train": 1_294_062})
def convert(raw: Path, drops: Drops, split: str | None = None, part: str = "all") -> Iterator[Record]:
    raw = require_path(raw, "the PubMedVision folder (PubMedVision_*_VQA.json, images/) or one of its JSON files")
    if part not in (*PARTS, "all"):
        raise ValueError(f"part={part!r}: expected alignment, instruct or all")
    if split not in (None, "train"):
        raise ValueError(f"PubMedVision has a train split only, not {split!r}")
    if raw.is_file():
        files = [(next((p for p, f in PARTS.items() if f == raw.name), "instruct"), raw)]
    else:
        files = [(p, raw / f) for p, f in PARTS.items() if part in (p, "all") and (raw / f).exists()]
        if not files:
            raise FileNotFoundError(f"{raw}: none of {', '.join(PARTS.values())} found; expected the PubMedVision folder")
    for p, path in files:
        yield from llava_records(path, path.parent, drops, source="pubmedvision", split="train", modality=None,
                                 meta_keys=("modality", "body_part"), extra={"part": p})
