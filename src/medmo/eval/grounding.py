"""Grounding scoring: one response against one record's boxes, and the benchmark aggregate.

Per sample: boxes are parsed from the response after its `<think>` block (scoring.strip_think,
as the GRPO rewards read it) with `medmo.boxes.parse_boxes` (every
syntax models emit; grid or pixel coordinates per `box_format`, one of
medmo.model.families' formats: grid, pixels, or resized:F:MIN:MAX for pixels of the
processor's resized input), matched one to one to
the ground truth (Hungarian on GIoU) and scored with `set_iou`: the sum of matched IoUs
over max(#pred, #gt), which is plain IoU when each side has one box. A response with no
readable box is a parse failure and scores 0, as in MedSG-Bench's evaluation code.

Two protocols:
- "set" (default): all predicted boxes, clamped to the image (parse_boxes), set IoU.
- "medsg": MedSG-Bench's official rule, to reproduce its published tables: the FIRST
  predicted box as written (not clamped, no fraction rescaling) against the first
  ground-truth box. On shared/data/medsg_bench's Qwen2.5-VL file this gives exactly the
  published 187.715 IoU sum and 92 hits at 0.5 over 1482 items; "set" gives 192.63 and
  96, because clamping a box that runs off the image raises its IoU and a second box
  costs. "medsg" reads coordinates with `parse_boxes(clamp=False, fractions=False)`.

Aggregate: mean IoU and the fraction of samples with IoU >= 0.3 / 0.5 / 0.7 (MedSG-Bench
and the MedMO paper count ">= threshold"), over every scored sample, parse failures
included as 0. Samples the runner could not score at all (missing image, malformed row)
carry "failure" and are left out of n; the runner reports them by reason.

Detection metrics, beside set IoU (a model that finds one of three cells perfectly and one
that draws three sloppy boxes can have the same set IoU): at each threshold t in 0.3 / 0.5 /
0.7, predicted and true boxes are matched one to one at IoU >= t (medmo.boxes.matches_at,
the matcher of the GRPO box rewards: as many pairs as possible), giving per sample
`n_pred`, `n_true` and `tp@t`. `detection_metrics` turns them into `precision@t`,
`recall@t`, `f1@t` micro over boxes (sums over all samples, as detection benchmarks pool
boxes) and `macro_precision@t`, `macro_recall@t`, `macro_f1@t` over images, plus
`count_mae` = mean |n_pred - n_true|. 0/0 conventions: precision with no predicted box is
1 when there is nothing to find and 0 otherwise; recall with no true box is 1 when nothing
is predicted and 0 otherwise; F1 = 2 tp / (n_pred + n_true), 1 when both are 0. Under the
"medsg" protocol the counts use the one box that protocol reads.
"""
from __future__ import annotations

from typing import Any

from medmo.boxes import Box, iou, matches_at, parse_boxes, set_iou
from medmo.eval.options import GROUNDING_PROTOCOLS as PROTOCOLS
from medmo.eval.scoring import strip_think
from medmo.model.families import pixel_space

THRESHOLDS = (0.3, 0.5, 0.7)


def gt_boxes(answer: dict[str, Any]) -> tuple[list[Box], float, float]:
    """Ground-truth boxes (pixels, clamped to the image) and the image size; ValueError if malformed."""
    size = answer.get("image_size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, (int, float)) for v in size)
            and size[0] > 0 and size[1] > 0):
        raise ValueError(f"answer.image_size must be [width, height] in pixels, got {size!r}")
    boxes = answer.get("boxes")
    if not isinstance(boxes, list):
        raise ValueError(f"answer.boxes must be a list of {{'bbox': [x1, y1, x2, y2]}}, got {boxes!r}")
    w, h = float(size[0]), float(size[1])
    out = []
    for b in boxes:
        try:
            box = Box.from_record(b).clamp(w, h)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"answer.boxes item {b!r} is not {{'bbox': [x1, y1, x2, y2]}}") from e
        if box.area <= 0:
            raise ValueError(f"answer box {b['bbox']} lies outside the {w:g}x{h:g} image (or has no area)")
        out.append(box)
    return out, w, h


def score_grounding(answer: dict[str, Any], response: str, box_format: str = "grid",
                    protocol: str = "set") -> dict[str, Any]:
    """{"parsed": [[x1, y1, x2, y2], ...] (pixels), "score": IoU in [0, 1], "parse_failure": bool}.

    `box_format` is "grid" (0-1000, Qwen3-VL/MedMO), "pixels" (of the original image) or
    "resized:F:MIN:MAX" (pixels of the processor's resized input: Qwen2.5-VL, medmo.model.families);
    `protocol` is "set" or "medsg" (module docstring). Raises ValueError only for a
    malformed ground truth or argument, never for a bad response.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"grounding protocol must be one of {PROTOCOLS}, got {protocol!r}")
    gt, w, h = gt_boxes(answer)
    if protocol == "medsg":
        return _score_medsg(gt, w, h, response, box_format)
    fmt, input_size = pixel_space(box_format, w, h)
    pred = parse_boxes(strip_think(response or ""), w, h, box_format=fmt, input_size=input_size)
    parse_failure = not pred and bool(gt)
    score = 0.0 if parse_failure else set_iou(pred, gt)
    return {"parsed": [[round(v, 2) for v in b.as_list()] for b in pred], "score": float(score),
            "parse_failure": parse_failure, **detection_counts(pred, gt)}


def _score_medsg(gt: list[Box], w: float, h: float, response: str, box_format: str) -> dict[str, Any]:
    fmt, input_size = pixel_space(box_format, w, h)
    pred = parse_boxes(response, w, h, box_format=fmt, clamp=False, fractions=False, input_size=input_size)
    if not pred or not gt:
        return {"parsed": [], "score": 0.0 if gt else float(not pred), "parse_failure": bool(gt),
                **detection_counts([], gt)}
    box = pred[0]
    return {"parsed": [box.as_list()], "score": iou(box, gt[0]), "parse_failure": False,
            **detection_counts([box], gt)}


def detection_counts(pred: list[Box], gt: list[Box], thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, int]:
    """{"n_pred", "n_true", "tp@t" for each t}: one-to-one matches at IoU >= t (medmo.boxes.matches_at)."""
    out = {"n_pred": len(pred), "n_true": len(gt)}
    for t in thresholds:
        out[f"tp@{t}"] = len(matches_at(pred, gt, t))
    return out


def _ratio(num: float, den: float, empty: float) -> float:
    return num / den if den else empty


def detection_metrics(counts: list[dict[str, Any]], thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, float]:
    """precision@t / recall@t / f1@t (micro over boxes), macro_* (over images) and count_mae.

    `counts` are per-sample detection_counts; 0/0 conventions in the module docstring.
    """
    if not counts:
        return {}
    n_pred = sum(c["n_pred"] for c in counts)
    n_true = sum(c["n_true"] for c in counts)
    out: dict[str, float] = {}
    for t in thresholds:
        tp = sum(c[f"tp@{t}"] for c in counts)
        out[f"precision@{t}"] = _ratio(tp, n_pred, float(n_true == 0))
        out[f"recall@{t}"] = _ratio(tp, n_true, float(n_pred == 0))
        out[f"f1@{t}"] = _ratio(2 * tp, n_pred + n_true, 1.0)
    for t in thresholds:
        per = [(c[f"tp@{t}"], c["n_pred"], c["n_true"]) for c in counts]
        out[f"macro_precision@{t}"] = sum(_ratio(tp, p, float(g == 0)) for tp, p, g in per) / len(per)
        out[f"macro_recall@{t}"] = sum(_ratio(tp, g, float(p == 0)) for tp, p, g in per) / len(per)
        out[f"macro_f1@{t}"] = sum(_ratio(2 * tp, p + g, 1.0) for tp, p, g in per) / len(per)
    out["count_mae"] = sum(abs(c["n_pred"] - c["n_true"]) for c in counts) / len(counts)
    return out


def _sample_counts(sample: dict[str, Any]) -> dict[str, Any] | None:
    """A scored sample's detection counts; recomputed from "parsed" for samples scored before they existed."""
    if all(k in sample for k in ("n_pred", "n_true", *(f"tp@{t}" for t in THRESHOLDS))):
        return sample
    try:
        gt, _, _ = gt_boxes(sample.get("answer") or {})
        pred = [Box.from_list(b) for b in sample.get("parsed") or []]
    except (TypeError, ValueError):
        return None
    return detection_counts(pred, gt)


def aggregate_grounding(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """{"n", "mean_iou", "iou@0.3", "iou@0.5", "iou@0.7", "parse_failures", detection_metrics} over scored samples."""
    scored = [s for s in samples if not s.get("failure") and s.get("score") is not None]
    n = len(scored)
    out: dict[str, Any] = {"n": n, "mean_iou": sum(s["score"] for s in scored) / n if n else 0.0}
    for t in THRESHOLDS:
        out[f"iou@{t}"] = sum(s["score"] >= t for s in scored) / n if n else 0.0
    out["parse_failures"] = sum(bool(s.get("parse_failure")) for s in scored)
    counts = [c for c in map(_sample_counts, scored) if c is not None]
    if len(counts) == n:
        out.update(detection_metrics(counts))
    return out
