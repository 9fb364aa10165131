"""Verifiable rewards for stage 4 (GRPO), on TRL's reward contract.

A reward is `fn(completions, **kwargs) -> list[float | None]`: every dataset column
arrives as a keyword list, one value per completion; `None` means "this term does not
apply to this sample" (TRL skips it, and a sample where every term is None carries no
gradient). The GRPO dataset built by medmo.train.grpo has the columns `task`, `answer`
(the record's answer as JSON) and `image_size` ([width, height], the pixel space of the
ground-truth boxes), so box rewards never guess the image size.

Terms (registered in REWARDS by name; a recipe weights them, e.g. `{giou: 1.0, format: 0.2}`):

    giou        grounding: predicted boxes (MedMO syntax on the 0-1000 grid) matched one to
                one to ground truth (Hungarian on GIoU); each matched GIoU mapped from
                [-1, 1] to [0, 1]; the sum divided by max(#pred, #gt), so an extra or a
                missing box costs as much as a wrong one (box spam does not pay).
    label       grounding with labelled boxes: matched pairs with the right label,
                divided by max(#pred, #gt).
    accuracy    closed VQA and multiple choice: 1 if medmo.eval.scoring marks it correct.
    factuality  reports: agreement of the 14 CheXpert observations (positive / negative /
                uncertain) found in the completion and in the reference by a
                negation-aware labeler (medmo.eval.chexpert), over the observations
                either mentions.
    format      the answer has its task's shape: MedMO box syntax and nothing else for
                grounding, one short line for closed VQA and MCQ, a non-empty text for reports.

Departure from VLM-R1 / MedMO's description: VLM-R1 rewards the IoU of a single box;
medmo scores sets, which the multi-box grounding data (cells, lesions) needs.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable

from medmo.boxes import Box, match_boxes, pairwise_giou, parse_boxes
from medmo.registry import Registry

RewardFn = Callable[..., list]
REWARDS: Registry[RewardFn] = Registry("reward term")

_NUM = r"\s*-?\d+(?:\.\d+)?\s*"
_QUAD = rf"\[{_NUM},{_NUM},{_NUM},{_NUM}\]"
_BOX_ANSWER = re.compile(rf"^\s*(?:[^<>\n\[\]]*<box>\s*\[\s*{_QUAD}(?:\s*,\s*{_QUAD})*\s*\]\s*</box>\s*)+$")
_SHORT_WORDS = 8  # a closed VQA / MCQ answer longer than this is not "a single word or phrase"


def completion_text(completion: Any) -> str:
    """The text of one completion, plain (`"..."`) or conversational (`[{"role", "content"}]`)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else ""
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""
    return ""


def _answer(value: Any) -> dict:
    """A record's answer from a dataset column: a dict, or its JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}
    return value if isinstance(value, dict) else {}


def _column(value: list | None, n: int) -> list:
    """A dataset column as a list, or n Nones when the dataset lacks it."""
    return list(value) if value is not None else [None] * n


def _gt_boxes(answer: dict, image_size) -> tuple[list[Box], float, float] | None:
    if "boxes" not in answer:
        return None
    w, h = image_size if image_size else answer.get("image_size", (None, None))
    if not w or not h:
        return None
    return [Box.from_record(b) for b in answer["boxes"]], float(w), float(h)


def _matched(pred: list[Box], gt: list[Box]) -> list[tuple[int, int, float]]:
    """One-to-one matches as (pred index, gt index, GIoU)."""
    pairs = match_boxes(pred, gt)
    if not pairs:
        return []
    g = pairwise_giou(pred, gt)
    return [(i, j, float(g[i, j])) for i, j, _ in pairs]


@REWARDS.register("giou")
def giou_reward(completions: list, answer: list | None = None, image_size: list | None = None,
                **kwargs) -> list[float | None]:
    """Set GIoU in [0, 1]: sum of matched (GIoU+1)/2 over max(#pred, #gt); None without gt boxes.

    >>> ans = {"boxes": [{"bbox": [10, 10, 50, 50]}], "image_size": [100, 100]}
    >>> giou_reward(["cell <box>[[100, 100, 500, 500]]</box>"], answer=[ans])
    [1.0]
    >>> giou_reward(["cell <box>[[100, 100, 500, 500], [600, 600, 900, 900]]</box>"], answer=[ans])
    [0.5]
    >>> giou_reward(["no cells"], answer=[ans]), giou_reward(["x"], answer=[{"text": "yes"}])
    ([0.0], [None])
    """
    n = len(completions)
    out: list[float | None] = []
    for c, a, size in zip(completions, _column(answer, n), _column(image_size, n)):
        gt = _gt_boxes(_answer(a), size)
        if gt is None:
            out.append(None)
            continue
        boxes, w, h = gt
        pred = parse_boxes(completion_text(c), w, h)
        if not pred and not boxes:
            out.append(1.0)
            continue
        total = sum((g + 1.0) / 2.0 for _, _, g in _matched(pred, boxes))
        out.append(total / max(len(pred), len(boxes)))
    return out


def _norm_label(label: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", " ", (label or "").lower()).strip()


@REWARDS.register("label")
def label_reward(completions: list, answer: list | None = None, image_size: list | None = None,
                 **kwargs) -> list[float | None]:
    """Matched boxes whose label equals the ground truth's, over max(#pred, #gt); None without labels.

    >>> ans = {"boxes": [{"bbox": [0, 0, 50, 50], "label": "nodule"}], "image_size": [100, 100]}
    >>> label_reward(["Nodule <box>[[0, 0, 500, 500]]</box>"], answer=[ans])
    [1.0]
    >>> label_reward(["mass <box>[[0, 0, 500, 500]]</box>"], answer=[ans])
    [0.0]
    """
    n = len(completions)
    out: list[float | None] = []
    for c, a, size in zip(completions, _column(answer, n), _column(image_size, n)):
        gt = _gt_boxes(_answer(a), size)
        if gt is None or not any(b.label for b in gt[0]):
            out.append(None)
            continue
        boxes, w, h = gt
        pred = parse_boxes(completion_text(c), w, h)
        if not pred:
            out.append(0.0)
            continue
        right = sum(_norm_label(pred[i].label) == _norm_label(boxes[j].label) for i, j, _ in _matched(pred, boxes))
        out.append(right / max(len(pred), len(boxes)))
    return out


@REWARDS.register("accuracy")
def accuracy_reward(completions: list, answer: list | None = None, task: list | None = None,
                    **kwargs) -> list[float | None]:
    """1.0 / 0.0 for closed VQA and multiple choice (medmo.eval.scoring, strict); None otherwise.

    >>> accuracy_reward(["Yes."], answer=[{"text": "yes", "closed": True}], task=["vqa"])
    [1.0]
    >>> accuracy_reward(["(C)"], answer=[{"letter": "B", "choices": {"B": "x", "C": "y"}}], task=["mcq"])
    [0.0]
    >>> accuracy_reward(["cardiomegaly"], answer=[{"text": "cardiomegaly", "closed": False}], task=["vqa"])
    [None]
    """
    from medmo.eval.scoring import score_record

    n = len(completions)
    out: list[float | None] = []
    for c, a, t in zip(completions, _column(answer, n), _column(task, n)):
        a = _answer(a)
        kind = t or ("mcq" if "letter" in a else "vqa" if "text" in a else None)
        verifiable = (kind == "mcq" and "letter" in a) or (kind == "vqa" and a.get("closed") is True)
        if not verifiable:
            out.append(None)
            continue
        out.append(1.0 if score_record(kind, a, completion_text(c))["correct"] else 0.0)
    return out


def report_reference(answer: dict) -> str | None:
    """The reference report text: findings + impression, else the full text."""
    parts = [answer.get("findings") or "", answer.get("impression") or ""]
    text = " ".join(p for p in parts if p).strip() or (answer.get("text") or "").strip()
    return text or None


@REWARDS.register("factuality")
def factuality_reward(completions: list, answer: list | None = None, task: list | None = None,
                      **kwargs) -> list[float | None]:
    """Reports: share of CheXpert observations (mentioned by either side) labelled alike; None otherwise.

    Both silent on all 14 observations counts as agreement (1.0).
    """
    from medmo.eval.chexpert import label_report

    n = len(completions)
    out: list[float | None] = []
    for c, a, t in zip(completions, _column(answer, n), _column(task, n)):
        a = _answer(a)
        ref = report_reference(a) if (t == "report" or "findings" in a or "impression" in a) else None
        if ref is None:
            out.append(None)
            continue
        want, got = label_report(ref), label_report(completion_text(c))
        union = set(want) | set(got)
        out.append(1.0 if not union else sum(want.get(o) == got.get(o) for o in union) / len(union))
    return out


@REWARDS.register("format")
def format_reward(completions: list, answer: list | None = None, task: list | None = None,
                  **kwargs) -> list[float | None]:
    """1.0 when the answer has its task's shape, else 0.0; None for tasks without a fixed shape.

    >>> format_reward(["cell <box>[[1, 2, 3, 4]]</box>", "cell [1, 2, 3, 4]"], task=["grounding"] * 2)
    [1.0, 0.0]
    >>> format_reward(["yes", "It is yes because <box>[[1, 2, 3, 4]]</box>"], task=["vqa"] * 2,
    ...               answer=[{"closed": True}] * 2)
    [1.0, 0.0]
    """
    n = len(completions)
    out: list[float | None] = []
    for c, a, t in zip(completions, _column(answer, n), _column(task, n)):
        text, a = completion_text(c).strip(), _answer(a)
        if t == "grounding" or "boxes" in a:
            out.append(1.0 if _BOX_ANSWER.match(text) else 0.0)
        elif t == "mcq" or (t == "vqa" and a.get("closed") is not False):
            ok = text and "\n" not in text and "<box>" not in text and len(text.split()) <= _SHORT_WORDS
            out.append(1.0 if ok else 0.0)
        elif t in ("report", "caption"):
            out.append(1.0 if text else 0.0)
        else:
            out.append(None)
    return out


def build_rewards(weights: dict[str, float]) -> tuple[list[RewardFn], list[float]]:
    """Recipe weights {term: weight} -> (reward functions, weights) for GRPOTrainer; unknown terms fail.

    >>> funcs, w = build_rewards({"giou": 1.0, "format": 0.2})
    >>> [f.__name__ for f in funcs], w
    (['giou_reward', 'format_reward'], [1.0, 0.2])
    """
    if not weights:
        raise ValueError(f"rewards: give at least one term with a weight; terms: {', '.join(REWARDS.names())}")
    funcs = [REWARDS.get(name) for name in weights]
    return funcs, [float(w) for w in weights.values()]
