"""A tiny model of any family in MedMO's tables, built offline and saved as a checkpoint.

`build_tiny(out_dir)` writes a tiny Qwen3-VL (medmo.model.tiny_base: same classes and code
path as the 8B model) that loads with `AutoProcessor.from_pretrained` /
`AutoModelForImageTextToText.from_pretrained` exactly like a hub checkpoint;
`build_tiny(out_dir, arch=...)` builds another family's (medmo.model.tiny_families) on the
same tokenizer builder. Nothing is downloaded.
"""
from __future__ import annotations

import logging
from pathlib import Path

from medmo.model.tiny_base import TinyConfig
from medmo.model.tiny_families import ARCHS

logger = logging.getLogger(__name__)

__all__ = ["TinyConfig", "build_tiny"]


def build_tiny(out_dir: str | Path, cfg: TinyConfig | None = None, arch: str = "qwen3_vl") -> Path:
    """Build a tiny model, tokenizer and processor of `arch` (medmo.model.tiny_families.ARCHS)
    and save them as a checkpoint folder."""
    build = ARCHS.get(arch)  # an unknown name fails before anything is written
    cfg = cfg or TinyConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, processor = build(cfg)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    logger.info("tiny %s: %.2fM parameters, vocabulary %d, saved to %s", arch, n / 1e6, len(processor.tokenizer), out)
    return out
