"""The one Box type, and everything medmo does with boxes.

Ground truth is stored in PIXELS of the original image (DESIGN.md). Qwen3-VL and MedMO
speak a relative 0-1000 grid; Qwen2.5-VL speaks absolute pixels of the (resized) input
(`parse_boxes(..., input_size=...)`; which family speaks what: medmo.model.families).
Conversion between pixels and the grid happens here and only here, at the edges:
`to_grid` when a prompt or target is rendered, `from_grid` when a prediction is scored.

`parse_boxes` reads every syntax models emit and never raises: garbage gives `[]`,
reversed corners are normalized, values are clamped to the image. Coordinates that all
lie in [0, 1] (and are not all integers) are read as fractions of the image.

`match_boxes` pairs predictions with ground truth one to one (Hungarian on GIoU), which
set IoU uses; `matches_at` keeps only pairs at IoU >= a threshold, as many as possible,
which the GRPO box rewards and the detection metrics (precision / recall / F1 @ t) use. Departure from VLM-R1: it scores a
single best box; medmo scores sets so that extra or missing boxes cost.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

GRID = 1000  # Qwen3-VL's relative coordinate range


@dataclass(frozen=True)
class Box:
    """An axis-aligned box, (x1, y1) top-left and (x2, y2) bottom-right, float pixels."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str | None = None

    @classmethod
    def from_list(cls, xyxy: Sequence[float], label: str | None = None) -> "Box":
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        return cls(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2), label)

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    def clamp(self, width: float, height: float) -> "Box":
        def c(v: float, hi: float) -> float:
            return min(max(v, 0.0), hi)

        return Box(c(self.x1, width), c(self.y1, height), c(self.x2, width), c(self.y2, height), self.label)

    def to_grid(self, width: float, height: float) -> "Box":
        """Pixels of a width x height image -> integer 0-1000 grid (rounded)."""
        sx, sy = GRID / width, GRID / height
        return Box(round(self.x1 * sx), round(self.y1 * sy), round(self.x2 * sx), round(self.y2 * sy), self.label)

    def from_grid(self, width: float, height: float) -> "Box":
        """0-1000 grid -> pixels of a width x height image."""
        sx, sy = width / GRID, height / GRID
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy, self.label)

    def scale(self, sx: float, sy: float) -> "Box":
        """x coordinates times sx, y times sy (pixels of a resized image -> pixels of the original)."""
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy, self.label)

    def to_record(self) -> dict:
        out: dict = {"bbox": self.as_list()}
        if self.label is not None:
            out["label"] = self.label
        return out

    @classmethod
    def from_record(cls, d: dict) -> "Box":
        return cls.from_list(d["bbox"], d.get("label"))


# ---------------------------------------------------------------------------- overlap


def _as_array(boxes: Iterable[Box] | np.ndarray) -> np.ndarray:
    if isinstance(boxes, np.ndarray):
        return boxes.reshape(-1, 4).astype(np.float64)
    return np.array([b.as_list() for b in boxes], dtype=np.float64).reshape(-1, 4)


def pairwise_iou(a, b) -> np.ndarray:
    """IoU matrix [len(a), len(b)]; boxes as Box lists or (N, 4) xyxy arrays."""
    return _pairwise(_as_array(a), _as_array(b), generalized=False)


def pairwise_giou(a, b) -> np.ndarray:
    """Generalized IoU matrix [len(a), len(b)], values in [-1, 1]."""
    return _pairwise(_as_array(a), _as_array(b), generalized=True)


def _pairwise(a: np.ndarray, b: np.ndarray, generalized: bool) -> np.ndarray:
    a, b = a[:, None, :], b[None, :, :]
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
        if not generalized:
            return iou
        cw = np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 0], b[..., 0])
        ch = np.maximum(a[..., 3], b[..., 3]) - np.minimum(a[..., 1], b[..., 1])
        hull = cw * ch
        return np.where(hull > 0, iou - (hull - union) / hull, iou)


def iou(a: Box, b: Box) -> float:
    return float(pairwise_iou([a], [b])[0, 0])


def giou(a: Box, b: Box) -> float:
    return float(pairwise_giou([a], [b])[0, 0])


def match_boxes(pred: Sequence[Box], gt: Sequence[Box]) -> list[tuple[int, int, float]]:
    """One-to-one matching maximizing total GIoU: [(pred_index, gt_index, iou)]."""
    if not pred or not gt:
        return []
    from scipy.optimize import linear_sum_assignment

    g = pairwise_giou(pred, gt)
    rows, cols = linear_sum_assignment(-g)
    ious = pairwise_iou(pred, gt)
    return [(int(r), int(c), float(ious[r, c])) for r, c in zip(rows, cols)]


def matches_at(pred: Sequence[Box], gt: Sequence[Box], iou_threshold: float,
               credit: str = "iou") -> list[tuple[int, int, float]]:
    """One-to-one (pred index, gt index, credit) pairs with IoU >= iou_threshold.

    The assignment has as many pairs as possible (a detection's true positives), and among
    those the most total credit: "iou", or "giou" clipped to [0, 1] (the GRPO box reward).
    So a pair under the threshold never takes a true box from one above it, and a tight
    pair never costs the set a second hit. Used by the GRPO rewards and the detection metrics.

    >>> matches_at([Box(0, 0, 10, 10), Box(0, 0, 100, 100)], [Box(0, 0, 10, 10)], 0.5)
    [(0, 0, 1.0)]
    """
    if credit not in ("iou", "giou"):
        raise ValueError(f"credit must be 'iou' or 'giou', got {credit!r}")
    if not pred or not gt:
        return []
    from scipy.optimize import linear_sum_assignment

    ious = pairwise_iou(pred, gt)
    hit = ious >= iou_threshold
    value = ious if credit == "iou" else np.clip(pairwise_giou(pred, gt), 0.0, 1.0)
    # Each hit weighs more than any set of fewer hits can gain in credit (credit <= 1 per pair).
    weight = np.where(hit, min(len(pred), len(gt)) + 1 + value, 0.0)
    rows, cols = linear_sum_assignment(-weight)
    return [(int(r), int(c), float(value[r, c])) for r, c in zip(rows, cols) if hit[r, c]]


def set_iou(pred: Sequence[Box], gt: Sequence[Box]) -> float:
    """Sum of matched IoUs divided by max(#pred, #gt): extra and missing boxes cost.

    With one box on each side this is plain IoU, the grounding benchmarks' per-item score.
    """
    if not pred and not gt:
        return 1.0
    matched = match_boxes(pred, gt)
    return sum(m[2] for m in matched) / max(len(pred), len(gt))


# ---------------------------------------------------------------------------- text

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_QUAD = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_QWEN2 = re.compile(
    rf"<\|box_start\|>\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*<\|box_(?:end|start)\|>"
)
_PAIRS = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")
# a label starts at the text's start or after a markup character: anchoring it there keeps the scan
# linear (unanchored, every position of a long completion was tried to its end)
_MEDMO = re.compile(r"(?:^|(?<=[<>\n\[\]]))([^<>\n\[\]]*?)\s*<box>(.*?)</box>", re.S)
_REF = re.compile(r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>", re.S)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
# The label is the phrase right before `<box>`: what follows the last sentence or clause
# break, so "It's in the second image. lesion <box>" (MedSG's SFT target) is "lesion".
_LABEL_BREAK = re.compile(r"[.!?;:,](?:\s+|$)")


def _box_label(prefix: str) -> str | None:
    return _LABEL_BREAK.split(prefix)[-1].strip(" :,.;-*") or None


def format_boxes(boxes: Sequence[Box], label: str | None = None) -> str:
    """MedMO's syntax: `Label <box>[[x1, y1, x2, y2], ...]</box>`, one group per label.

    Boxes must already be on the grid; coordinates are written as integers.
    """
    groups: dict[str, list[Box]] = {}
    for b in boxes:
        groups.setdefault(label if label is not None else (b.label or ""), []).append(b)
    parts = []
    for name, group in groups.items():
        coords = ", ".join("[" + ", ".join(str(int(round(v))) for v in b.as_list()) + "]" for b in group)
        parts.append(f"{name} <box>[{coords}]</box>".strip())
    return " ".join(parts)


def _finite(vals: Sequence[float]) -> bool:
    return all(np.isfinite(v) and abs(v) < 1e7 for v in vals)


def _parse_raw(text: str) -> list[tuple[list[float], str | None]]:
    """Every (xyxy, label) the text contains, in the first syntax that yields boxes."""
    found: list[tuple[list[float], str | None]] = []
    for m in _MEDMO.finditer(text):
        label = _box_label(m.group(1))
        for q in _QUAD.finditer(m.group(2)):
            found.append(([float(v) for v in q.groups()], label))
    if found:
        return found
    found = _parse_json(text)
    if found:
        return found
    ref = _REF.search(text)
    ref_label = ref.group(1).strip() if ref else None
    for m in _QWEN2.finditer(text):
        found.append(([float(v) for v in m.groups()], ref_label))
    if found:
        return found
    for m in _PAIRS.finditer(text):
        found.append(([float(v) for v in m.groups()], ref_label))
    if found:
        return found
    return [([float(v) for v in q.groups()], None) for q in _QUAD.finditer(text)]


def _parse_json(text: str) -> list[tuple[list[float], str | None]]:
    candidates = [m.group(1) for m in _FENCE.finditer(text)] or [text]
    out: list[tuple[list[float], str | None]] = []
    for cand in candidates:
        start = cand.find("[{") if "[{" in cand else cand.find("{")
        if start < 0:
            continue
        try:
            obj = json.loads(cand[start:].strip().rstrip("`").strip())
        except (ValueError, RecursionError):
            continue
        items = obj if isinstance(obj, list) else [obj]
        for it in items:
            if not isinstance(it, dict):
                continue
            coords = it.get("bbox_2d", it.get("bbox", it.get("box")))
            if isinstance(coords, list) and len(coords) == 4 and all(isinstance(v, (int, float)) for v in coords):
                label = it.get("label")
                out.append(([float(v) for v in coords], str(label) if label is not None else None))
    return out


def parse_boxes(text: object, width: float = GRID, height: float = GRID, box_format: str = "grid",
                clamp: bool = True, fractions: bool = True,
                input_size: tuple[float, float] | None = None) -> list[Box]:
    """All boxes in a model's answer, in PIXELS of a width x height image.

    box_format="grid": numbers are on Qwen3-VL's 0-1000 grid (MedMO, Qwen3-VL);
    box_format="pixels": numbers are pixels of the image the model saw: the original one,
    or the `input_size` (w, h) it was resized to (Qwen2.5-VL answers in pixels of its
    smart-resized input; medmo.model.families computes that size), scaled back here.
    Fractions (all values in [0, 1], not all integers) are scaled by the image size in
    either mode. Never raises; returns [] for anything it cannot read.
    `clamp=False, fractions=False` keep coordinates exactly as written (a benchmark's own
    protocol may demand it, e.g. MedSG-Bench's official scoring).
    """
    if box_format not in ("grid", "pixels"):
        raise ValueError(f"box_format must be 'grid' or 'pixels', got {box_format!r}")
    if not isinstance(text, str) or not text:
        return []
    try:
        raw = _parse_raw(text)
    except (ValueError, RecursionError, OverflowError):
        return []
    boxes = []
    for vals, label in raw:
        if not _finite(vals):
            continue
        if fractions and all(0.0 <= v <= 1.0 for v in vals) and not all(float(v).is_integer() for v in vals):
            vals = [vals[0] * width, vals[1] * height, vals[2] * width, vals[3] * height]
            box = Box.from_list(vals, label)
        elif box_format == "grid":
            box = Box.from_list(vals, label).from_grid(width, height)
        elif input_size is not None:
            box = Box.from_list(vals, label).scale(width / input_size[0], height / input_size[1])
        else:
            box = Box.from_list(vals, label)
        boxes.append(box.clamp(width, height) if clamp else box)
    return boxes
