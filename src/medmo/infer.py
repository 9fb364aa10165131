"""One image, one question, from the shell or from code: `medmo infer`.

    medmo infer --model runs/demo/stage4 --image cells.png --task ground --target cell --draw out.png
    medmo infer --model DIR --image ct.dcm --window lung --prompt "Is there a nodule?" --json
    medmo infer --model DIR --image brain.nii.gz --task report

Tasks: `vqa` asks the prompt as written; `ground` asks MedMO's grounding prompt for
`--target` (or the prompt as written); `report` asks for Findings and Impression and
splits the answer into those two sections. Whatever the task, boxes in the answer
(`medmo.boxes.parse_boxes`, 0-1000 grid) are mapped to the image's pixels, reported
with their grid coordinates, and drawn with `--draw`. DICOM and NIfTI are read by
`medmo.imaging.open_image` (window, slice and frame options pass through) within the
same decoding budgets as `medmo serve` (`--max-image-pixels`, `--max-request-pixels`,
`--max-volume-voxels`, `--max-decompressed-bytes`), before any model is loaded: a bad or
oversized image is a one-line error naming the file (and the budget and its flag).

The same `build_request` and `interpret` serve the HTTP API (`medmo.serve.api`), so the
shell and the server give the same answer for the same image and prompt.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from PIL import Image

from medmo.boxes import Box, parse_boxes
from medmo.data.schema import IMAGE_TOKEN
from medmo.imaging.core import parse_window
from medmo.imaging.limits import Budget, Limits
from medmo.model.load import Dtype
from medmo.model.prompts import GROUND_TARGET, REPORT_SECTIONS

logger = logging.getLogger(__name__)

Task = Literal["vqa", "report", "ground"]
TASKS = get_args(Task)


@dataclass
class InferConfig:
    """`medmo infer` options (also usable from code: `infer(InferConfig(...))`)."""

    model: str = field(default="", metadata={"help": "checkpoint folder or hub id"})
    image: str = field(default="", metadata={"help": "PNG/JPEG/TIFF, DICOM (.dcm) or NIfTI (.nii/.nii.gz) file"})
    prompt: str | None = field(default=None, metadata={
        "help": "the question (vqa), or a prompt replacing the task's default"})
    task: Task = field(default="vqa", metadata={"help": "what to ask"})
    target: str | None = field(default=None, metadata={"help": "ground: what to find, e.g. nodule"})
    window: str | None = field(default=None, metadata={
        "help": "DICOM/CT window: preset (lung, bone, brain, ...) or centre,width"})
    slice_index: int | None = field(default=None, metadata={
        "help": "NIfTI slice index (default: the middle one)", "aliases": ("--slice",)})
    frame: int | None = field(default=None, metadata={"help": "multi-frame DICOM frame / 4-D NIfTI volume"})
    draw: str | None = field(default=None, metadata={"help": "write the image with the answer's boxes drawn to this PNG"})
    max_new_tokens: int = field(default=256, metadata={"help": "generation budget"})
    max_pixels: int | None = field(default=None, metadata={
        "help": "model input pixel budget (default: processor's)"})
    dtype: Dtype = field(default="auto", metadata={"help": "weights dtype; auto: bfloat16 on GPU, float32 on CPU"})
    device: str | None = field(default=None, metadata={"help": "cpu | cuda (default: cuda when available)"})
    # decoding budgets, the same as `medmo serve`'s (medmo.imaging.limits), checked on headers first
    max_image_pixels: int = field(default=Limits.max_image_pixels, metadata={
        "help": "pixels of one decoded image (frame, slice, montage); more is an error"})
    max_request_pixels: int = field(default=Limits.max_request_pixels, metadata={
        "help": "pixels of all images of one request together; more is an error"})
    max_volume_voxels: int = field(default=Limits.max_volume_voxels, metadata={
        "help": "voxels of a NIfTI volume, multi-frame DICOM or DICOM series; more is an error"})
    max_decompressed_bytes: int = field(default=Limits.max_decompressed_bytes, metadata={
        "help": "bytes a .nii.gz or deflated DICOM may inflate to; more is an error"})

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.task == "vqa" and not self.prompt:
            raise ValueError("task vqa needs --prompt (the question to ask about the image)")
        if self.task == "ground" and not (self.target or self.prompt):
            raise ValueError("task ground needs --target (what to find, e.g. 'nodule') or --prompt")
        parse_window(self.window)  # a bad --window fails here, before anything is read
        for name in BUDGETS:
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")

    def budget(self) -> Budget:
        """The decoding budget of one call; its errors name infer's flags."""
        return Budget(Limits(**{name: getattr(self, name) for name in BUDGETS},
                             raise_with="raise it with `medmo infer --{flag} N`"))


BUDGETS = ("max_image_pixels", "max_request_pixels", "max_volume_voxels", "max_decompressed_bytes")


def task_prompt(task: str, prompt: str | None = None, target: str | None = None) -> str:
    """The text asked for a task: the prompt as given wins, else the task's default."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if prompt:
        return prompt
    if task == "ground":
        if not target:
            raise ValueError("grounding needs a target phrase (what to find) or a prompt")
        return GROUND_TARGET.format(target=target)
    if task == "report":
        return REPORT_SECTIONS
    raise ValueError("vqa needs a question")


def build_request(image: Image.Image, task: str, prompt: str | None = None, target: str | None = None,
                  max_new_tokens: int | None = None):
    """A generation Request (medmo.model.generate) asking `task` about one image."""
    from medmo.model.generate import Request

    text = task_prompt(task, prompt, target)
    return Request(messages=[{"role": "user", "content": f"{IMAGE_TOKEN}\n{text}"}], images=[image],
                   max_new_tokens=max_new_tokens)


_SECTION = re.compile(r"\b(findings|impression)\s*:", re.I)


def split_report(text: str) -> dict[str, str]:
    """'Findings: ... Impression: ...' -> {"findings", "impression"}.

    Section names are matched case-insensitively anywhere in the text; text before any
    section name counts as findings (models often skip the header); a missing section is "".
    """
    out = {"findings": "", "impression": ""}
    marks = [(m.start(), m.end(), m.group(1).lower()) for m in _SECTION.finditer(text)]
    if not marks:
        out["findings"] = text.strip()
        return out
    if marks[0][0] > 0:
        out["findings"] = text[:marks[0][0]].strip()
    for (_, end, name), nxt in zip(marks, marks[1:] + [(len(text), len(text), "")]):
        body = text[end:nxt[0]].strip()
        out[name] = f"{out[name]} {body}".strip() if out[name] else body
    return out


def box_dicts(boxes: list[Box], width: int, height: int) -> list[dict]:
    """Pixel boxes -> [{"bbox": pixels, "grid": 0-1000 ints, "label"}] for JSON output."""
    return [{"bbox": [round(v, 2) for v in b.as_list()], "grid": [int(v) for v in b.to_grid(width, height).as_list()],
             "label": b.label} for b in boxes]


def interpret(task: str, answer: str, image_size: tuple[int, int], target: str | None = None) -> dict:
    """The model's raw answer -> {"task", "answer", "boxes", "labels", "image_size"} (+ report sections).

    Boxes are read on the 0-1000 grid (MedMO, Qwen3-VL) and mapped to the image's pixels;
    a box without a label of its own takes the grounding target as its label.
    """
    width, height = image_size
    boxes = [b if b.label or not target else Box(b.x1, b.y1, b.x2, b.y2, target)
             for b in parse_boxes(answer, width, height, box_format="grid")]
    out: dict = {"task": task, "answer": answer, "boxes": box_dicts(boxes, width, height),
                 "labels": sorted({b.label for b in boxes if b.label}), "image_size": [width, height]}
    if task == "ground":
        out["target"] = target
    if task == "report":
        out.update(split_report(answer))
    return out


def load_input(cfg: InferConfig) -> Image.Image:
    from medmo.imaging import open_image

    return open_image(cfg.image, window=cfg.window, slice_index=cfg.slice_index, frame=cfg.frame,
                      budget=cfg.budget())


def infer(cfg: InferConfig, backend=None) -> dict:
    """Answer one image; draws the boxes to `cfg.draw` when set. Returns `interpret`'s dict."""
    image = load_input(cfg)  # bad images fail here, before any model is loaded
    if backend is None:
        from medmo.model.generate import HFBackend

        backend = HFBackend(cfg.model, batch_size=1, max_new_tokens=cfg.max_new_tokens, dtype=cfg.dtype,
                            device=cfg.device, max_pixels=cfg.max_pixels)
    request = build_request(image, cfg.task, cfg.prompt, cfg.target, cfg.max_new_tokens)
    (gen,) = backend.generations([request])
    if gen.error:
        raise RuntimeError(f"generation failed: {gen.error}")
    answer = gen.text
    result = interpret(cfg.task, answer, image.size, cfg.target)
    if cfg.draw:
        from medmo.draw import draw_boxes

        out = Path(cfg.draw)
        out.parent.mkdir(parents=True, exist_ok=True)
        draw_boxes(image, [Box.from_list(b["bbox"], b["label"]) for b in result["boxes"]], color=None).save(out)
        result["drawn"] = str(out)
        logger.info("drew %d box(es) on %s", len(result["boxes"]), out)
    return result


def format_result(result: dict, as_json: bool = False) -> str:
    """What `medmo infer` prints: the JSON object, or the answer then one line per box."""
    if as_json:
        return json.dumps(result, indent=2)
    lines = [result["answer"]]
    for b in result["boxes"]:
        px = ", ".join(f"{v:.0f}" for v in b["bbox"])
        lines.append(f"  box {b['label'] or '-'}: [{px}] px  (grid {b['grid']})")
    if result.get("drawn"):
        lines.append(f"  drawn: {result['drawn']}")
    return "\n".join(lines)
