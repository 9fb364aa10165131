"""Load any Qwen3-VL checkpoint (hub id or local folder) with its processor.

One entry point for training, evaluation and serving: dtype, device map, attention
implementation and optional LoRA are arguments, so the 8B model and the tiny model take
the same path. A local folder that is not a checkpoint fails with a message naming the
missing file; hub ids are passed to `from_pretrained` unchanged (tests use local paths).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class LoraConfig:
    """LoRA adapters (PEFT). Off by default: MedMO trains full weights."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


def resolve_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    return "auto" if name == "auto" else getattr(torch, name)


def check_checkpoint(path: str | Path) -> None:
    """A local path must hold a config.json; otherwise say what it is missing."""
    p = Path(path)
    if p.exists() and not (p / "config.json").exists():
        raise FileNotFoundError(
            f"{p} is not a model checkpoint (no config.json). Pass a folder written by "
            f"`save_pretrained` (e.g. `medmo tiny --out {p}`) or a hub id like Qwen/Qwen3-VL-4B-Instruct."
        )


def load_processor(path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """The checkpoint's processor; optionally with a pixel budget (e.g. 768*768 for stage 1)."""
    from transformers import AutoProcessor

    check_checkpoint(path)
    processor = AutoProcessor.from_pretrained(str(path))
    ip = processor.image_processor
    if min_pixels is not None or max_pixels is not None:
        size = dict(ip.size)
        if min_pixels is not None:
            size["shortest_edge"] = min_pixels
        if max_pixels is not None:
            size["longest_edge"] = max_pixels
        ip.size = size
    processor.tokenizer.padding_side = "left"
    return processor


def load_model(path: str | Path, dtype: str = "float32", device_map: str | None = None,
               attn_implementation: str | None = None, lora: LoraConfig | None = None):
    """Qwen3VLForConditionalGeneration from a folder or hub id, optionally wrapped in LoRA."""
    from transformers import Qwen3VLForConditionalGeneration

    check_checkpoint(path)
    kwargs = {"dtype": resolve_dtype(dtype)}
    if device_map:
        kwargs["device_map"] = device_map
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = Qwen3VLForConditionalGeneration.from_pretrained(str(path), **kwargs)
    if lora is not None and lora.enabled:
        from peft import LoraConfig as PeftLoraConfig, get_peft_model

        model = get_peft_model(model, PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                     target_modules=lora.target_modules, task_type="CAUSAL_LM"))
    return model


def load(path: str | Path, **kwargs):
    """(model, processor) in one call."""
    return load_model(path, **kwargs), load_processor(path)
