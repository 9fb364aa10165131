"""Verifiable rewards for stage 4 (GRPO), on TRL's reward contract: each pays only for a right answer.

A reward is `fn(completions, **kwargs) -> list[float | None]`: every dataset column
arrives as a keyword list, one value per completion; `None` means "this term does not
apply to this sample" (TRL skips it, and a sample where every term is None carries no
gradient). The GRPO dataset built by medmo.train.grpo has the columns `task`, `answer`
(the record's answer as JSON), `image_size` ([width, height], the pixel space of the
ground-truth boxes), `source` and `modality`; TRL adds `prompts` and `log_metric`.

Every term reads the ANSWER: the completion after its `<think>` block
(medmo.eval.scoring.strip_think, the function the scorers use), so boxes or letters
inside the reasoning never count. References come from the functions the scorers use:
boxes from medmo.eval.grounding.gt_boxes (clamped, validated), report text from
medmo.eval.tasks.report_reference, correctness from medmo.eval.scoring.score_record.

Terms (registered in REWARDS by name; a recipe weights them, e.g. `{giou: 1.0, format: 0.1}`):

    giou        grounding: predicted boxes (MedMO syntax, 0-1000 grid) matched one to one to
                the ground truth; only pairs with IoU >= `iou_threshold` (a recipe key, 0.5 as
                in VLM-R1 and Visual-RFT) earn anything, each its GIoU; the sum is divided by
                max(#pred, #gt). Pairs under the threshold, extra boxes and missed boxes earn 0.
                Why GIoU survives only inside matched pairs: unthresholded, GIoU pays about 0.5
                for a whole-image box on a small lesion and for a box beside it (the hack of
                issue 10); above the threshold GIoU <= IoU, it rises only as a box that already
                hits tightens, so it shapes without paying for a miss.
    label       grounding with labelled boxes: pairs above the threshold whose label (the phrase
                right before `<box>`, medmo.boxes) equals the ground truth's, over max(#pred, #gt).
    accuracy    closed VQA and multiple choice: 1 if medmo.eval.scoring (strict) marks it
                correct; hedges ("yes or no", "A or B", "A, B") are wrong there.
    factuality  reports. Chest radiograph reports (modality "xray" and a chest X-ray report
                source, CHEST_XRAY_SOURCES): agreement of the CheXpert observations STATED by the
                completion and by the reference (medmo.eval.chexpert with stated_only: "No
                Finding" only when a normal study is stated), over the observations either
                states; a stated normal study implies every pathology is negative. Any other
                report (CT, MRI, pathology, a record without source/modality): F1 of clinical
                content words (negation-aware: "no lesion" != "lesion"; counts clipped to the
                reference's; words of the prompt removed from both sides). A completion that
                states nothing recognisable earns 0.
    format      the answer has its task's shape: MedMO box syntax with valid boxes and nothing
                else for grounding, one short line for closed VQA and MCQ, non-empty for reports.
    think_format  the reasoning format (GRPOConfig.reasoning): one non-empty, closed
                `<think>...</think>` first, then a non-empty answer in the task's format.

GRPO logs, through TRL's `log_metric` hook, `boxes/predicted`, `boxes/true` and
`boxes/matched` (means over the batch's grounding samples) from the box terms, so box
spam shows in the log while it happens.

Departures from VLM-R1 / MedMO's description: VLM-R1 rewards the IoU of a single box;
medmo scores sets (cells, lesions come in several). MedMO names "factuality" without a
definition; medmo's is rule-based (no CheXbert in the loop) and restricted to what is stated.
"""
from __future__ import annotations

import functools
import json
import logging
import re
from collections import Counter
from typing import Any, Callable

from medmo.boxes import GRID, Box, matches_at, parse_boxes
from medmo.eval.scoring import strip_think
from medmo.registry import Registry

logger = logging.getLogger(__name__)

RewardFn = Callable[..., list]
REWARDS: Registry[RewardFn] = Registry("reward term")
IOU_THRESHOLD = 0.5  # VLM-R1 / Visual-RFT: a predicted box counts when its IoU with a true box is >= 0.5
# Chest radiograph report sources: their reports are what the CheXpert observations describe.
CHEST_XRAY_SOURCES = ("mimic_cxr", "chexpert_plus", "iu_xray")

_NUM = r"\s*-?\d+(?:\.\d+)?\s*"
_QUAD = rf"\[{_NUM},{_NUM},{_NUM},{_NUM}\]"
_BOX_ANSWER = re.compile(rf"^\s*(?:[^<>\n\[\]]*<box>\s*\[\s*{_QUAD}(?:\s*,\s*{_QUAD})*\s*\]\s*</box>\s*)+$")
_SHORT_WORDS = 8  # a closed VQA / MCQ answer longer than this is not "a single word or phrase"
_THINK = re.compile(r"^\s*<think>(.*?)</think>(.*)$", re.S)


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


def answer_text(completion: Any) -> str:
    """What a completion answers: its text after the `<think>` block (the scorers' strip_think)."""
    return strip_think(completion_text(completion))


def _prompt_text(prompt: Any) -> str:
    """Every text part of a prompt (plain or conversational), joined."""
    if isinstance(prompt, str):
        return prompt
    return " ".join(completion_text([m]) for m in prompt or [] if isinstance(m, dict))


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


# ------------------------------------------------------------------------- boxes
def _reference_boxes(answer: dict, image_size) -> tuple[list[Box], float, float] | None:
    """The record's true boxes (medmo.eval.grounding.gt_boxes), the column's image size winning; None if none."""
    from medmo.eval.grounding import gt_boxes

    if "boxes" not in answer:
        return None
    if image_size:
        answer = {**answer, "image_size": list(image_size)}
    try:
        return gt_boxes(answer)
    except ValueError as e:
        logger.warning("grounding reward skips a sample: %s (fix the record with `medmo data validate`)", e)
        return None


def box_matches(pred: list[Box], gt: list[Box], iou_threshold: float = IOU_THRESHOLD) -> list[tuple[int, int, float]]:
    """One-to-one (pred index, gt index, credit) pairs with IoU >= iou_threshold; credit = GIoU (>= 0).

    medmo.boxes.matches_at (the matcher the detection metrics use): as many pairs above the
    threshold as possible, then the most credit, so a pair under the threshold never takes a
    true box from one above it.

    >>> gt = [Box(0, 0, 10, 10)]
    >>> box_matches([Box(0, 0, 10, 10), Box(0, 0, 100, 100)], gt)
    [(0, 0, 1.0)]
    >>> box_matches([Box(0, 0, 100, 100), Box(10, 0, 20, 10)], gt)  # whole image, neighbour
    []
    """
    return matches_at(pred, gt, iou_threshold, credit="giou")


def _box_terms(completions, answer, image_size, iou_threshold, log_metric) -> list[tuple | None]:
    """Per completion (pred, gt, matches) or None for non-grounding samples; logs box counts."""
    n = len(completions)
    out: list[tuple | None] = []
    for c, a, size in zip(completions, _column(answer, n), _column(image_size, n)):
        ref = _reference_boxes(_answer(a), size)
        if ref is None:
            out.append(None)
            continue
        gt, w, h = ref
        pred = parse_boxes(answer_text(c), w, h)
        out.append((pred, gt, box_matches(pred, gt, iou_threshold)))
    scored = [t for t in out if t is not None]
    if log_metric is not None and scored:
        for name, k in (("boxes/predicted", 0), ("boxes/true", 1), ("boxes/matched", 2)):
            log_metric(name, sum(len(t[k]) for t in scored) / len(scored))
    return out


@REWARDS.register("giou")
def giou_reward(completions: list, answer: list | None = None, image_size: list | None = None,
                iou_threshold: float = IOU_THRESHOLD, log_metric: Callable | None = None,
                **kwargs) -> list[float | None]:
    """Sum of GIoU over pairs with IoU >= iou_threshold, over max(#pred, #gt); None without gt boxes.

    >>> ans = {"boxes": [{"bbox": [10, 10, 50, 50]}], "image_size": [100, 100]}
    >>> giou_reward(["cell <box>[[100, 100, 500, 500]]</box>"], answer=[ans])
    [1.0]
    >>> giou_reward(["cell <box>[[100, 100, 500, 500], [600, 600, 900, 900]]</box>"], answer=[ans])
    [0.5]
    >>> giou_reward(["cell <box>[[0, 0, 1000, 1000]]</box>", "no cells"], answer=[ans] * 2)
    [0.0, 0.0]
    >>> giou_reward(["x"], answer=[{"text": "yes"}])
    [None]
    """
    out: list[float | None] = []
    for t in _box_terms(completions, answer, image_size, iou_threshold, log_metric):
        if t is None:
            out.append(None)
            continue
        pred, gt, matches = t
        out.append(1.0 if not pred and not gt else sum(m[2] for m in matches) / max(len(pred), len(gt)))
    return out


def _norm_label(label: str | None) -> str:
    """Lower case, alphanumerics, a plural 's' dropped, no spaces: "Nodules" == "nodule",
    "right ventricle" == "RightVentricle" (MedSG writes labels in camel case)."""
    words = re.sub(r"[^a-z0-9]+", " ", (label or "").lower()).split()
    return "".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")) else w
                    for w in words)


@REWARDS.register("label")
def label_reward(completions: list, answer: list | None = None, image_size: list | None = None,
                 iou_threshold: float = IOU_THRESHOLD, log_metric: Callable | None = None,
                 **kwargs) -> list[float | None]:
    """Pairs above the IoU threshold with the right label, over max(#pred, #gt); None without labels.

    >>> ans = {"boxes": [{"bbox": [0, 0, 50, 50], "label": "nodule"}], "image_size": [100, 100]}
    >>> label_reward(["Nodules <box>[[0, 0, 500, 500]]</box>", "mass <box>[[0, 0, 500, 500]]</box>"], answer=[ans] * 2)
    [1.0, 0.0]
    >>> label_reward(["It's in the second image. nodule <box>[[0, 0, 500, 500]]</box>"], answer=[ans])
    [1.0]
    >>> label_reward(["nodule <box>[[0, 0, 1000, 1000]]</box>"], answer=[ans])  # right word, box misses
    [0.0]
    """
    out: list[float | None] = []
    for t in _box_terms(completions, answer, image_size, iou_threshold, log_metric):
        if t is None or not any(b.label for b in t[1]):
            out.append(None)
            continue
        pred, gt, matches = t
        right = sum(bool(_norm_label(gt[j].label)) and _norm_label(pred[i].label) == _norm_label(gt[j].label)
                    for i, j, _ in matches)
        out.append(right / max(len(pred), len(gt)))
    return out


# ------------------------------------------------------------------------- answers
@REWARDS.register("accuracy")
def accuracy_reward(completions: list, answer: list | None = None, task: list | None = None,
                    **kwargs) -> list[float | None]:
    """1.0 / 0.0 for closed VQA and multiple choice (medmo.eval.scoring, strict); None otherwise.

    >>> accuracy_reward(["Yes.", "yes or no"], answer=[{"text": "yes", "closed": True}] * 2, task=["vqa"] * 2)
    [1.0, 0.0]
    >>> mcq = {"letter": "B", "choices": {"A": "x", "B": "y"}}
    >>> accuracy_reward(["B\\n\\nBecause y is seen.", "A, B"], answer=[mcq] * 2, task=["mcq"] * 2)
    [1.0, 0.0]
    >>> accuracy_reward(["cardiomegaly"], answer=[{"text": "cardiomegaly", "closed": False}], task=["vqa"])
    [None]
    """
    from medmo.eval.scoring import score_record

    n = len(completions)
    out: list[float | None] = []
    for c, a, t in zip(completions, _column(answer, n), _column(task, n)):
        a = _answer(a)
        kind = "mcq" if t == "retrieval" else t or ("mcq" if "letter" in a else "vqa" if "text" in a else None)
        verifiable = (kind == "mcq" and "letter" in a) or (kind == "vqa" and a.get("closed") is True)
        if not verifiable:
            out.append(None)
            continue
        out.append(1.0 if score_record(kind, a, completion_text(c))["correct"] else 0.0)
    return out


# ------------------------------------------------------------------------- reports
_STOP = frozenset("""a an the and or of in on at to for with by from as is are was were be been being this that these
there their its it which who what when where than then also both each other into onto over under within without per
image images study findings finding impression report shows show shown seen noted demonstrates demonstrated
appears appear visible present please generate given following format return including""".split())
_NEGATORS = frozenset("no not without negative free absent absence neither nor none".split())
_CLAUSE = re.compile(r"[.;!?]+(?=\s|$)|\n+|,\s*(?:but|however|although|though|whereas|while)\b|\b(?:but|however)\b")


def _content_words(text: str) -> Counter:
    """Clinical content words of a text, each prefixed "no_" inside a negation's clause."""
    words: Counter = Counter()
    for clause in _CLAUSE.split(text.lower()):
        negated = False
        for w in re.findall(r"[a-z]+|\d+(?:\.\d+)?", clause):
            if w in _NEGATORS:
                negated = True
                continue
            if w in _STOP or (w.isalpha() and len(w) < 3):
                continue
            if len(w) > 4 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
                w = w[:-1]
            words["no_" + w if negated else w] += 1
    return words


def content_overlap(reference: str, text: str, prompt: str = "") -> float | None:
    """F1 of negation-aware clinical content words, counts clipped to the reference's; None if the
    reference has none. Words of the prompt are removed from both sides (copying it earns nothing).

    >>> ref = "Hypodense lesion in segment VII of the liver. No biliary dilatation."
    >>> round(content_overlap(ref, "Hypodense liver lesion in segment VII. No biliary dilatation."), 2)
    1.0
    >>> content_overlap(ref, "asdf qwerty"), content_overlap(ref, "Biliary dilatation.") < 0.3
    (0.0, True)
    """
    drop = {w.removeprefix("no_") for w in _content_words(prompt)}
    ref = Counter({w: k for w, k in _content_words(reference).items() if w.removeprefix("no_") not in drop})
    hyp = Counter({w: k for w, k in _content_words(text).items() if w.removeprefix("no_") not in drop})
    if not ref:
        return None
    common = sum((ref & hyp).values())
    if not common:
        return 0.0
    p, r = common / sum(hyp.values()), common / sum(ref.values())
    return 2 * p * r / (p + r)


def _chexpert_agreement(want: dict[str, int], got: dict[str, int]) -> float:
    """Share of observations stated by either side that both label alike; a stated normal
    study ("No Finding" 1) implies every unstated pathology is negative."""
    if not got:
        return 0.0

    def value(labels: dict[str, int], obs: str) -> int | None:
        if obs in labels:
            return labels[obs]
        return 0 if labels.get("No Finding") == 1 and obs not in ("No Finding", "Support Devices") else None

    union = set(want) | set(got)
    return sum(value(want, o) == value(got, o) for o in union) / len(union)


def is_chest_xray(source: str | None, modality: str | None) -> bool:
    """Whether a record's report is a chest radiograph report (the CheXpert observations apply)."""
    return modality == "xray" and source in CHEST_XRAY_SOURCES


@REWARDS.register("factuality")
def factuality_reward(completions: list, answer: list | None = None, task: list | None = None,
                      source: list | None = None, modality: list | None = None, prompts: list | None = None,
                      **kwargs) -> list[float | None]:
    """Reports: stated CheXpert observations alike (chest X-ray) or clinical content overlap (other
    reports); 0 for a completion that states nothing; None for other tasks.

    >>> ref = {"text": "No acute cardiopulmonary process."}
    >>> factuality_reward(["No acute cardiopulmonary process.", "asdf qwerty", "x"], answer=[ref] * 3,
    ...                   task=["report"] * 3, source=["mimic_cxr"] * 3, modality=["xray"] * 3)
    [1.0, 0.0, 0.0]
    """
    from medmo.eval.chexpert import label_report
    from medmo.eval.tasks import report_reference

    n = len(completions)
    out: list[float | None] = []
    rows = zip(completions, _column(answer, n), _column(task, n), _column(source, n), _column(modality, n),
               _column(prompts, n))
    for c, a, t, src, mod, prompt in rows:
        a = _answer(a)
        if not (t == "report" or (t is None and ("findings" in a or "impression" in a))):
            out.append(None)
            continue
        try:
            ref = report_reference(a)
        except ValueError:
            out.append(None)
            continue
        text = answer_text(c)
        want = label_report(ref, stated_only=True) if is_chest_xray(src, mod) else {}
        if want:
            out.append(_chexpert_agreement(want, label_report(text, stated_only=True)))
        else:
            out.append(content_overlap(ref, text, _prompt_text(prompt)))
    return out


# ------------------------------------------------------------------------- format
def _answer_format(text: str, a: dict, t: str | None) -> float | None:
    """1.0 / 0.0 whether an answer (think block already removed) has its task's shape; None if free-form."""
    if t == "grounding" or "boxes" in a:
        if not _BOX_ANSWER.match(text):
            return 0.0
        boxes = parse_boxes(text, GRID, GRID, clamp=False, fractions=False)
        valid = all(b.area > 0 and 0 <= min(b.as_list()) and max(b.as_list()) <= GRID for b in boxes)
        return 1.0 if boxes and valid else 0.0
    if t in ("mcq", "retrieval") or (t == "vqa" and a.get("closed") is not False):
        ok = text and "\n" not in text and "<box>" not in text and len(text.split()) <= _SHORT_WORDS
        return 1.0 if ok else 0.0
    if t in ("report", "caption"):
        return 1.0 if text else 0.0
    return None


@REWARDS.register("format")
def format_reward(completions: list, answer: list | None = None, task: list | None = None,
                  **kwargs) -> list[float | None]:
    """1.0 when the answer has its task's shape, else 0.0; None for tasks without a fixed shape.

    >>> format_reward(["cell <box>[[1, 2, 3, 4]]</box>", "cell [1, 2, 3, 4]", "c <box>[[5, 5, 5, 9]]</box>"],
    ...               task=["grounding"] * 3)
    [1.0, 0.0, 0.0]
    >>> format_reward(["yes", "It is yes because <box>[[1, 2, 3, 4]]</box>"], task=["vqa"] * 2,
    ...               answer=[{"closed": True}] * 2)
    [1.0, 0.0]
    """
    n = len(completions)
    return [_answer_format(answer_text(c), _answer(a), t)
            for c, a, t in zip(completions, _column(answer, n), _column(task, n))]


@REWARDS.register("think_format")
def think_format_reward(completions: list, answer: list | None = None, task: list | None = None,
                        **kwargs) -> list[float]:
    """1.0 for one non-empty closed `<think>` block first, then a non-empty answer in the task's format.

    >>> ok = "<think>The opacity is in the left lower zone.</think>yes"
    >>> think_format_reward([ok, "yes", "<think></think>yes", "<think>a</think><think>b</think>yes",
    ...                      "<think>a</think>"], answer=[{"closed": True}] * 5, task=["vqa"] * 5)
    [1.0, 0.0, 0.0, 0.0, 0.0]
    """
    n = len(completions)
    out: list[float] = []
    for c, a, t in zip(completions, _column(answer, n), _column(task, n)):
        text = completion_text(c)
        m = _THINK.match(text)
        once = text.count("<think>") == 1 and text.count("</think>") == 1
        if not (m and once and m.group(1).strip() and m.group(2).strip()):
            out.append(0.0)
            continue
        shape = _answer_format(m.group(2).strip(), _answer(a), t)
        out.append(1.0 if shape is None else shape)
    return out


# ------------------------------------------------------------------------- recipe
_THRESHOLDED = ("giou", "label")  # terms that take iou_threshold


def build_rewards(weights: dict[str, float], iou_threshold: float = IOU_THRESHOLD
                  ) -> tuple[list[RewardFn], list[float]]:
    """Recipe weights {term: weight} -> (reward functions, weights) for GRPOTrainer; unknown terms fail.

    The box terms get `iou_threshold` bound (functools.partial keeping the term's __name__,
    which TRL logs as `rewards/<name>/mean`).

    >>> funcs, w = build_rewards({"giou": 1.0, "format": 0.2}, iou_threshold=0.7)
    >>> [f.__name__ for f in funcs], w, funcs[0].keywords
    (['giou_reward', 'format_reward'], [1.0, 0.2], {'iou_threshold': 0.7})
    """
    if not weights:
        raise ValueError(f"rewards: give at least one term with a weight; terms: {', '.join(REWARDS.names())}")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"reward_iou_threshold must be in (0, 1], got {iou_threshold}; 0.5 is VLM-R1's")
    funcs = []
    for name in weights:
        fn = REWARDS.get(name)
        if name in _THRESHOLDED:
            fn = functools.update_wrapper(functools.partial(fn, iou_threshold=iou_threshold), fn)
        funcs.append(fn)
    return funcs, [float(w) for w in weights.values()]
