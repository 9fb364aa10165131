"""Helpers for the data-tool tests: small distinct PNGs, synthetic records, record folders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medmo.data.shards import ShardWriter


def write_images(folder: Path, n: int, size: tuple[int, int] = (48, 40), seed: int = 0) -> list[str]:
    """n PNGs with different content (smoothed noise, so perceptual hashes differ)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        im = Image.fromarray(small).resize(size, Image.BILINEAR)
        path = folder / f"img{seed}_{i}.png"
        im.save(path)
        paths.append(str(path))
    return paths


def vqa(rid: str, question: str, answer: str, images: list[str], *, source: str = "toy", split: str = "train",
        modality: str = "ct") -> dict:
    prompt = "".join("<image>\n" for _ in images) + question
    return {"id": rid, "source": source, "split": split, "task": "vqa", "modality": modality, "images": images,
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            "answer": {"text": answer, "closed": answer in ("yes", "no")}, "meta": {"question": question}}


def write_folder(out: Path, records: list[dict], prefix: str = "part", fmt: str = "jsonl", shard_size: int = 1000) -> Path:
    with ShardWriter(out, prefix, fmt, shard_size) as w:
        for r in records:
            w.write(r)
    return out
