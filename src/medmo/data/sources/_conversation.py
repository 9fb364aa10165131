"""Helpers shared by the instruction-conversation converters (not a source: the leading
underscore keeps it out of the registry): LLaVA-Med, Quilt-LLaVA, PubMedVision.

These releases ship LLaVA's conversation layout, one JSON list of
    {"id": ..., "image": "a.jpg" (or a list of paths), "conversations":
     [{"from": "human", "value": "<image>\\nWhat is shown?"}, {"from": "gpt", "value": "..."}, ...]}
and `llava_records` turns each item into one unified record with every turn kept:
several user/assistant turns in `messages` (medmo.train.sft trains on every assistant
turn). Roles "human"/"user" -> user, "gpt"/"assistant" -> assistant; a "system" turn is
kept. Departures from LLaVA's own loader (llava/train/train.py `preprocess_multimodal`),
all counted by reason instead of silently fixed or crashed on:
- an item whose "<image>" placeholders do not match its images, once the usual case is
  repaired (LLaVA puts the tag before or after the first question; one missing tag on a
  one-image item is added before the first user turn, as LLaVA's loader assumes), is
  dropped as "image_token_mismatch";
- turns must alternate user/assistant starting with the user and end with the assistant
  ("bad_turns"); an empty turn is "empty_turn".
`answer.text` is the first assistant reply (Record.target); `meta.turns` counts the
exchanges.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from medmo.data.schema import IMAGE_TOKEN, Record
from medmo.data.sources import Drops
from medmo.data.sources._qa import keep, read_rows

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}

# free-text modality names of the releases (PubMedVision, MedPix) -> medmo's vocabulary; first keyword found wins
MODALITY_KEYWORDS = (
    ("ultrasound", "ultrasound"), ("sonograph", "ultrasound"), ("doppler", "ultrasound"),
    ("magnetic resonance", "mri"), ("mri", "mri"), ("mr ", "mri"), ("mr-", "mri"),
    ("computed tomography", "ct"), ("ct", "ct"), ("pet", "nuclear"), ("spect", "nuclear"),
    ("scintigra", "nuclear"), ("nuclear", "nuclear"), ("mammogra", "xray"), ("x-ray", "xray"),
    ("xray", "xray"), ("radiograph", "xray"), ("fluorosc", "xray"), ("angiogra", "xray"),
    ("fundus", "fundus"), ("optical coherence", "fundus"), ("oct", "fundus"),
    ("dermoscop", "dermoscopy"), ("endoscop", "endoscopy"), ("colonoscop", "endoscopy"),
    ("histolog", "pathology"), ("histopatholog", "pathology"), ("patholog", "pathology"),
    ("microscop", "microscopy"), ("photograph", "photo"),
)


def modality_from_text(text: Any) -> str:
    """A release's modality name ("Computed Tomography", "MR", "CT w/contrast (IV)") ->
    ct, mri, xray, ultrasound, nuclear, fundus, dermoscopy, endoscopy, pathology,
    microscopy, photo or other."""
    t = f" {str(text or '').lower()} "
    if t.strip() in ("mr", "mri"):
        return "mri"
    for key, modality in MODALITY_KEYWORDS:
        if key in ("ct", "pet", "oct", "spect"):  # short words: only whole (in "spectacles", "octave" they are not)
            if any(f"{sep}{key}{end}" in t for sep in (" ", "(") for end in (" ", ")", "-", "/")):
                return modality
        elif key in t:
            return modality
    return "other"


def chat_turns(conversations: Any, n_images: int) -> list[dict[str, str]]:
    """LLaVA "conversations" -> messages with one "<image>" per image; ValueError with the
    drop reason ("bad_turns", "empty_turn", "image_token_mismatch") as its message."""
    if not isinstance(conversations, list) or not conversations:
        raise ValueError("bad_turns")
    turns = []
    for t in conversations:
        role = ROLES.get(str(t.get("from", t.get("role", ""))).lower())
        value = t.get("value", t.get("content"))
        if role is None or not isinstance(value, str):
            raise ValueError("bad_turns")
        if not value.strip():
            raise ValueError("empty_turn")
        turns.append({"role": role, "content": value.strip()})
    dialogue = [t["role"] for t in turns if t["role"] != "system"]
    if (not dialogue or dialogue[-1] != "assistant" or turns[0]["role"] == "assistant"
            or any(r == dialogue[i - 1] for i, r in enumerate(dialogue) if i)):
        raise ValueError("bad_turns")
    tags = sum(t["content"].count(IMAGE_TOKEN) for t in turns)
    if tags == 0 and n_images == 1:
        first = next(t for t in turns if t["role"] == "user")
        first["content"] = f"{IMAGE_TOKEN}\n{first['content']}"
    elif tags != n_images:
        raise ValueError("image_token_mismatch")
    return turns


def conversation_record(*, rid: str, source: str, split: str, modality: str, images: list[str],
                        turns: list[dict[str, str]], task: str = "vqa", meta: dict[str, Any] | None = None) -> Record:
    reply = next(t["content"] for t in turns if t["role"] == "assistant")
    return Record(id=rid, source=source, split=split, task=task, modality=modality, images=list(images),
                  messages=turns, answer={"text": reply},
                  meta={"turns": sum(t["role"] == "assistant" for t in turns), **(meta or {})})


def item_images(value: Any, root: Path) -> list[str]:
    """An item's "image" (one path, or a list) as absolute paths under `root` (existence is
    checked by `medmo data convert --check-images`, so questions convert before images arrive)."""
    names = value if isinstance(value, list) else [value] if value not in (None, "") else []
    return [str((root / str(n)).resolve()) for n in names]


def llava_records(path: Path, image_root: Path, drops: Drops, *, source: str, split: str, modality: str | None,
                  task: str = "vqa", meta_keys: tuple[str, ...] = (), extra: dict[str, Any] | None = None
                  ) -> Iterator[Record]:
    """Records of one LLaVA-layout JSON file; `modality` None reads the item's own "modality"
    (PubMedVision) through `modality_from_text`."""
    for i, row in enumerate(read_rows(path)):
        where = f"{path.name}[{i}]"
        with drops.guard(where):
            if not keep(row, drops, where, ("conversations",)):
                continue
            images = item_images(row.get("image", row.get("images")), image_root)
            try:
                turns = chat_turns(row["conversations"], len(images))
            except ValueError as e:
                drops.add(str(e), where)
                continue
            yield conversation_record(
                rid=f"{source}/{split}/{row.get('id', i)}", source=source, split=split,
                modality=modality or modality_from_text(row.get("modality")), images=images, turns=turns, task=task,
                meta={**{k: row[k] for k in meta_keys if row.get(k) not in (None, "")}, **(extra or {})})
