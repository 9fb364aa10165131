"""Load any image-text-to-text checkpoint (hub id or local folder) with its processor.

One entry point for training, evaluation and serving: dtype, device map and attention
implementation are arguments, so the 8B model and the tiny model take the same path.
attn_implementation "auto" is resolved here, once: flash-attention-2 when CUDA is there and
`flash_attn` imports, else SDPA (packed rows need the varlen kernel to skip masked
cross-sample blocks; SDPA computes them). LoRA is applied by the training stage
(medmo.train.stage.lora_model), which knows which modules train. Models load through
`AutoModelForImageTextToText` and `AutoProcessor`, so every family of MedMO's tables
(Qwen3-VL and its MoE, Qwen2.5-VL / Lingshu, InternVL3, Gemma 3 / MedGemma,
LLaVA-OneVision) takes this path; `medmo tiny --arch` builds one of
each. dtype "auto" is bfloat16 on a CUDA device that supports it and float32 otherwise
(an 8B model in float32 needs ~35 GB; on CPU bfloat16 matmuls are slow); loaded with no
device at all (`medmo export`), "auto" keeps the checkpoint's own dtype. A local folder
that is not a checkpoint fails with a message naming the missing file; hub ids are
passed to `from_pretrained` unchanged (tests use local paths).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

logger = logging.getLogger(__name__)

Dtype = Literal["auto", "float32", "bfloat16", "float16"]  # "auto": bfloat16 on a capable GPU, else float32
DTYPES = get_args(Dtype)


@dataclass
class LoraConfig:
    """LoRA adapters (PEFT). Off by default: MedMO trains full weights."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


def resolve_dtype(name: str, device: str | None = None):
    """A dtype for `from_pretrained`. "auto" for a device: bfloat16 on a CUDA device that supports
    it, else float32; "auto" with no device (export): "auto", the checkpoint's own dtype."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    if name != "auto":
        return getattr(torch, name)
    if device is None:
        return "auto"
    cuda = torch.cuda.is_available() and (device == "auto" or str(device).startswith("cuda"))
    return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32


def resolve_attn_implementation(name: str | None, device: str | None = None) -> str | None:
    """"auto" -> "flash_attention_2" when CUDA is available (and `device`, if given, is CUDA) and
    `flash_attn` imports, else "sdpa"; any other name (or None: transformers' default) unchanged."""
    import torch

    if name != "auto":
        return name
    if torch.cuda.is_available() and (device in (None, "auto") or str(device).startswith("cuda")):
        try:
            import flash_attn  # noqa: F401  (a wheel built for another torch fails here, not mid-run)
            return "flash_attention_2"
        except ImportError as e:
            logger.info("attn_implementation auto: flash_attn does not import (%s); using sdpa", e)
    return "sdpa"


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
    if (min_pixels is not None or max_pixels is not None) and "longest_edge" not in (ip.size or {}):
        logger.warning("%s resizes images to fixed tiles (size %s): min/max pixels are ignored",
                       type(ip).__name__, dict(ip.size))
    elif min_pixels is not None or max_pixels is not None:
        size = dict(ip.size)
        if min_pixels is not None:
            size["shortest_edge"] = min_pixels
        if max_pixels is not None:
            size["longest_edge"] = max_pixels
        ip.size = size
    processor.tokenizer.padding_side = "left"
    return processor


def check_image_text_to_text(path: str | Path) -> None:
    """A checkpoint whose model_type transformers cannot load as image-text-to-text fails here, saying
    what to use instead (e.g. InternVL's original remote-code checkpoints, model_type internvl_chat)."""
    from transformers import __version__
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    from medmo.model.families import model_type

    kind = model_type(path) if Path(path).is_dir() else None  # hub ids: from_pretrained says it
    if kind is not None and kind not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        hint = (" InternVL's original checkpoints are remote code; use their transformers conversion "
                "(OpenGVLab/InternVL3-8B-hf)." if kind.startswith("internvl") else "")
        raise ValueError(f"{path}: model type {kind!r} has no image-text-to-text class in transformers {__version__}; "
                         f"medmo loads models through AutoModelForImageTextToText.{hint}")


def load_model(path: str | Path, dtype: str = "auto", device_map: str | None = None,
               attn_implementation: str | None = None, device: str | None = None):
    """The checkpoint's model class (AutoModelForImageTextToText) from a folder or hub id. `device`
    (cuda / cpu) only decides what dtype and attn_implementation "auto" mean; moving is the caller's."""
    from transformers import AutoModelForImageTextToText

    check_checkpoint(path)
    check_image_text_to_text(path)
    kwargs = {"dtype": resolve_dtype(dtype, device or device_map)}
    if device_map:
        kwargs["device_map"] = device_map
    attn = resolve_attn_implementation(attn_implementation, device or device_map)
    if attn:
        kwargs["attn_implementation"] = attn
        if attn_implementation == "auto":
            logger.info("attn_implementation auto -> %s", attn)
    return AutoModelForImageTextToText.from_pretrained(str(path), **kwargs)


def load(path: str | Path, **kwargs):
    """(model, processor) in one call."""
    return load_model(path, **kwargs), load_processor(path)
