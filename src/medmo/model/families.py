"""Model families: which coordinates each family's grounding answers are written in.

The family is the checkpoint's `model_type` (config.json). Ground truth is pixels of
the original image (DESIGN.md); a family's answers are read in one of three spaces:

    grid      Qwen's relative 0-1000 grid (medmo.boxes.GRID)
    pixels    pixels of the original image
    resized   pixels of the image AFTER the processor's smart resize (patch x merge
              multiples within min/max pixels), mapped back with that same computation
              (transformers' `smart_resize`), never with the original image size

A resolved "resized" format carries the processor's numbers, `resized:FACTOR:MIN:MAX`
(e.g. `resized:28:3136:12845056`), so a run's results.json says exactly how boxes were
read and `medmo score --box-format resized:28:3136:12845056` can rescore saved answers.

Per family, with the source of each convention:
- qwen3_vl, qwen3_vl_moe: grid. Qwen3-VL model card and cookbook: "relative coordinates
  ... from 0 to 1000". MedMO is Qwen3-VL (DESIGN.md).
- qwen2_vl: grid. Qwen2-VL paper (arXiv:2409.12191, §2.2): boxes normalized to [0, 1000).
- qwen2_5_vl (also Lingshu): resized. Qwen2.5-VL technical report (arXiv:2502.13923, §2.1):
  "absolute coordinates based on the actual size of the images" -- the model sees the
  smart-resized image, so its pixels are those of the resized input.
- internvl (InternVL2.5/3 in transformers format): grid. InternVL docs / chat template:
  `<ref>x</ref><box>[[x1, y1, x2, y2]]</box>` with coordinates normalized to 0-1000.
- llava, llava_next, llava_onevision: grid, but their training data (LLaVA-1.5, Liu et al.
  2023, appendix: RefCOCO boxes) writes fractions of the image in [0, 1]; parse_boxes
  reads all-fraction boxes as fractions in every format, so both are understood.
- gemma3 (Gemma 3, MedGemma): grid. Neither model card defines a box output format
  (PaliGemma's <loc> tokens are a different model); medmo reads the 0-1000 grid MedMO's
  prompts are trained for and says so. Override with --box-format when a model's card
  says otherwise.
An unknown model_type is read on the grid with a warning naming --box-format.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

KINDS = ("grid", "pixels", "resized")


@dataclass(frozen=True)
class Family:
    box_format: str  # one of KINDS
    source: str  # where the convention is stated


FAMILIES: dict[str, Family] = {
    "qwen3_vl": Family("grid", "Qwen3-VL model card: relative coordinates 0-1000"),
    "qwen3_vl_moe": Family("grid", "Qwen3-VL model card: relative coordinates 0-1000"),
    "qwen2_vl": Family("grid", "Qwen2-VL paper (arXiv:2409.12191) sec. 2.2: boxes normalized to [0, 1000)"),
    "qwen2_5_vl": Family("resized", "Qwen2.5-VL report (arXiv:2502.13923) sec. 2.1: absolute coordinates of the "
                                    "input image, i.e. after smart resize"),
    "internvl": Family("grid", "InternVL2.5/3 docs: <box>[[x1, y1, x2, y2]]</box> normalized to 0-1000"),
    "llava": Family("grid", "LLaVA-1.5 (Liu et al. 2023) appendix: RefCOCO boxes as [0, 1] fractions"),
    "llava_next": Family("grid", "LLaVA-1.5 (Liu et al. 2023) appendix: RefCOCO boxes as [0, 1] fractions"),
    "llava_onevision": Family("grid", "LLaVA-1.5 (Liu et al. 2023) appendix: RefCOCO boxes as [0, 1] fractions"),
    "gemma3": Family("grid", "no box format in the Gemma 3 / MedGemma model cards; MedMO's 0-1000 grid assumed"),
}


def check_box_format(spec: str | None) -> str | None:
    """`spec` if it is a box format (None, grid, pixels, resized, resized:F:MIN:MAX); else ValueError."""
    if spec is None or spec in KINDS:
        return spec
    try:
        kind, *nums = str(spec).split(":")
        if kind == "resized" and len(nums) == 3 and all(int(n) > 0 for n in nums):
            return spec
    except ValueError:
        pass
    raise ValueError(f"box format {spec!r} is not one of {', '.join(KINDS)} or resized:FACTOR:MIN_PIXELS:MAX_PIXELS "
                     f"(e.g. resized:28:3136:12845056 for Qwen2.5-VL's processor)")


def model_type(model: str | Path) -> str | None:
    """The checkpoint's config.json model_type (local folder or hub id); None when it cannot be read."""
    p = Path(model)
    try:
        if p.is_dir():
            return json.loads((p / "config.json").read_text()).get("model_type")
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(str(model)).model_type
    except (OSError, ValueError) as e:
        logger.warning("cannot read the model type of %s (%s)", model, e)
        return None


def resize_spec(model: str | Path, min_pixels: int | None = None, max_pixels: int | None = None) -> str:
    """`resized:FACTOR:MIN:MAX` from the checkpoint's image processor, with the run's pixel budget applied."""
    from transformers import AutoImageProcessor

    ip = AutoImageProcessor.from_pretrained(str(model))
    size = dict(ip.size)
    if "longest_edge" not in size or not getattr(ip, "patch_size", None):
        raise ValueError(f"{model}: its {type(ip).__name__} has no smart resize (size {size}); "
                         f"box format 'resized' is for Qwen2-VL-style processors, use grid or pixels")
    factor = int(ip.patch_size) * int(getattr(ip, "merge_size", 1) or 1)
    lo = min_pixels if min_pixels is not None else size["shortest_edge"]
    hi = max_pixels if max_pixels is not None else size["longest_edge"]
    return f"resized:{factor}:{lo}:{hi}"


def box_format_for(model: str | Path, min_pixels: int | None = None, max_pixels: int | None = None,
                   override: str | None = None) -> str | None:
    """The box format to read `model`'s answers in: `override` when given ("resized" gets the
    processor's numbers), else its family's; None means the grid (every benchmark's own default)."""
    fmt = check_box_format(override)
    if fmt is None:
        kind = model_type(model)
        family = FAMILIES.get(kind or "")
        if family is None:
            logger.warning("model type %r has no known box format: answers are read on the 0-1000 grid "
                           "(pass --box-format pixels|resized if its model card says otherwise)", kind)
            return None
        fmt = None if family.box_format == "grid" else family.box_format
    return resize_spec(model, min_pixels, max_pixels) if fmt == "resized" else fmt


def resized_size(spec: str, width: float, height: float) -> tuple[int, int]:
    """(width, height) the processor of `spec` (resized:F:MIN:MAX) resizes a width x height image to."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    factor, lo, hi = (int(v) for v in check_box_format(spec).split(":")[1:])
    h, w = smart_resize(int(round(height)), int(round(width)), factor=factor, min_pixels=lo, max_pixels=hi)
    return w, h


def pixel_space(box_format: str, width: float, height: float) -> tuple[str, tuple[float, float] | None]:
    """(the medmo.boxes format, the size of the image the coordinates are pixels of) for a box format."""
    check_box_format(box_format)
    if box_format.startswith("resized"):
        if box_format == "resized":
            raise ValueError("box format 'resized' needs the processor's numbers: resized:FACTOR:MIN:MAX "
                             "(medmo eval fills them in from the checkpoint)")
        return "pixels", resized_size(box_format, width, height)
    return box_format, None
