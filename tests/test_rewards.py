"""Reward terms on hand-made cases (one comment per case), adversarial completions under the
8B recipe's weights, and real SFT targets (MedSG-188K) that must earn full credit."""
import json
from pathlib import Path

import pytest
import yaml

from medmo.model.prompts import GROUND_TARGET, REPORT
from medmo.train.rewards import (REWARDS, accuracy_reward, box_matches, build_rewards, completion_text,
                                 content_overlap, factuality_reward, format_reward, giou_reward, label_reward,
                                 think_format_reward)

ROOT = Path(__file__).resolve().parents[1]
MEDSG_TRAIN = ROOT.parent / "shared" / "data" / "medsg_bench" / "Task8_mini.json"

# 100x100 image: grid coordinates are 10x the pixels.
ONE = {"boxes": [{"bbox": [10, 10, 50, 50], "label": "cell"}], "image_size": [100, 100]}
TWO = {"boxes": [{"bbox": [10, 10, 30, 30], "label": "cell"}, {"bbox": [60, 60, 90, 90], "label": "nodule"}],
       "image_size": [100, 100]}

GIOU_CASES = [
    ("cell <box>[[100, 100, 500, 500]]</box>", ONE, 1.0),  # exact box
    ("cell <box>[[100, 100, 500, 500], [600, 600, 900, 900]]</box>", ONE, 0.5),  # one extra box halves it
    ("cell <box>[[600, 600, 900, 900], [100, 100, 300, 300]]</box>", TWO, 1.0),  # order does not matter
    ("c <box>[[100, 100, 300, 300]]</box>", TWO, 0.5),  # one of two found exactly, the other missed
    ("c <box>[[200, 200, 600, 600]]</box>", ONE, 0.0),  # near miss, IoU 9/23 = 0.39 < 0.5: nothing
    ("c <box>[[550, 550, 950, 950]]</box>", ONE, 0.0),  # disjoint (unthresholded GIoU paid ~0.4 here)
    ("c <box>[[0, 0, 1000, 1000]]</box>", ONE, 0.0),  # whole image on a 16%-of-image box: IoU 0.16
    ("c <box>[[500, 100, 900, 500]]</box>", ONE, 0.0),  # the neighbour, touching but not overlapping
    ("there is a cell", ONE, 0.0),  # no box at all
    ("", ONE, 0.0),  # empty answer
    ("<think>cell <box>[[100, 100, 500, 500]]</box></think>", ONE, 0.0),  # a box inside the reasoning
    ("<think>hm</think>cell <box>[[100, 100, 500, 500]]</box>", ONE, 1.0),  # the box after the reasoning
    ("cell <box>[[100, 100, 500, 500]]</box>", {"text": "yes", "closed": True}, None),  # not grounding: skipped
    ("nothing", {"boxes": [], "image_size": [100, 100]}, 1.0),  # nothing to find, nothing found
    ("c <box>[[1, 1, 2, 2]]</box>", {"boxes": [{"bbox": [500, 500, 600, 600]}], "image_size": [100, 100]}, None),  # gt off the image: skipped
]


@pytest.mark.parametrize("text,answer,expected", GIOU_CASES)
def test_giou_reward(text, answer, expected):
    got = giou_reward([text], answer=[answer])[0]
    assert got == (None if expected is None else pytest.approx(expected))


def test_giou_inside_a_hit_is_the_pairs_giou_and_spam_divides():
    # pred [12,10,52,50] vs gt [10,10,50,50] (pixels): IoU 38/42 >= 0.5, hull 42x40 = union: GIoU = IoU
    assert giou_reward(["c <box>[[120, 100, 520, 500]]</box>"], answer=[ONE]) == [pytest.approx(1520 / 1680)]
    spam = "c <box>[" + ", ".join(["[100, 100, 500, 500]"] * 10) + "]</box>"  # 10 copies of the right box
    assert giou_reward([spam], answer=[ONE]) == [pytest.approx(0.1)]


@pytest.mark.parametrize("threshold,expected", [(0.3, 9 / 23 - 200 / 2500), (0.5, 0.0)])
def test_iou_threshold_is_the_recipes(threshold, expected):
    # the near miss of GIOU_CASES (IoU 0.39) pays its GIoU under a 0.3 threshold, nothing under 0.5
    (giou, _), _ = build_rewards({"giou": 1.0, "label": 0.5}, iou_threshold=threshold)
    assert giou(["cell <box>[[200, 200, 600, 600]]</box>"], answer=[ONE]) == [pytest.approx(expected)]
    with pytest.raises(ValueError, match="reward_iou_threshold"):
        build_rewards({"giou": 1.0}, iou_threshold=0.0)


def test_box_matches_keeps_a_hit_away_from_a_miss():
    from medmo.boxes import Box

    gt = [Box(0, 0, 10, 10), Box(20, 0, 30, 10)]
    # a whole-row box overlaps both a little; the exact second box must get the second truth
    pairs = box_matches([Box(0, 0, 30, 10), Box(20, 0, 30, 10)], gt)
    assert pairs == [(1, 1, 1.0)]


def test_image_size_column_wins_and_answer_may_be_json():
    # the dataset's image_size column gives the pixel space; the answer arrives as JSON text
    ans = json.dumps({"boxes": [{"bbox": [20, 20, 100, 100]}], "image_size": [999, 999]})
    assert giou_reward(["c <box>[[100, 100, 500, 500]]</box>"], answer=[ans], image_size=[[200, 200]]) == [1.0]


def test_conversational_completions():
    conv = [{"role": "assistant", "content": "cell <box>[[100, 100, 500, 500]]</box>"}]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "yes"}]}]
    assert completion_text(conv) == conv[0]["content"] and completion_text(parts) == "yes"
    assert giou_reward([conv], answer=[ONE]) == [1.0]


def test_box_counts_are_logged_through_trls_log_metric():
    logged = []
    comps = ["c <box>[[100, 100, 500, 500], [0, 0, 1000, 1000]]</box>", "c", "yes"]
    giou_reward(comps, answer=[ONE, TWO, {"text": "yes", "closed": True}],
                log_metric=lambda name, value: logged.append((name, value)))
    # two grounding samples: predicted (2 + 0) / 2, true (1 + 2) / 2, matched (1 + 0) / 2
    assert logged == [("boxes/predicted", 1.0), ("boxes/true", 1.5), ("boxes/matched", 0.5)]


LABEL_CASES = [
    ("cell <box>[[100, 100, 300, 300]]</box> nodule <box>[[600, 600, 900, 900]]</box>", TWO, 1.0),  # both right
    ("cell <box>[[100, 100, 300, 300], [600, 600, 900, 900]]</box>", TWO, 0.5),  # second label wrong
    ("Nodules <box>[[600, 600, 900, 900]]</box>", TWO, 0.5),  # case and plural ignored; one box missing
    ("It's in the second image. nodule <box>[[600, 600, 900, 900]]</box>", TWO, 0.5),  # MedSG's SFT sentence first
    ("Cells <box>[[100, 100, 300, 300]]</box>", {**TWO, "boxes": [{**TWO["boxes"][0], "label": "BloodCell"}]}, 0.0),
    # ^ a different label
    ("blood cell <box>[[100, 100, 300, 300]]</box>", {**TWO, "boxes": [{**TWO["boxes"][0], "label": "BloodCell"}]}, 1.0),
    # ^ MedSG's camel-case label written as words
    ("nodule <box>[[0, 0, 1000, 1000]]</box>", TWO, 0.0),  # right word on a box that misses: no credit
    ("nodule <box>[[400, 400, 700, 700]]</box>", TWO, 0.0),  # right word, near miss (IoU 0.06): no credit
    ("no boxes, but cell and nodule", TWO, 0.0),  # labels without boxes
    ("c <box>[[1, 1, 2, 2]]</box>", {"boxes": [{"bbox": [0, 0, 5, 5]}], "image_size": [10, 10]}, None),  # unlabelled gt
]


@pytest.mark.parametrize("text,answer,expected", LABEL_CASES)
def test_label_reward(text, answer, expected):
    assert label_reward([text], answer=[answer]) == [expected]


@pytest.mark.skipif(not MEDSG_TRAIN.exists(), reason="needs ../shared/data/medsg_bench")
def test_supervised_targets_earn_full_box_label_and_format_credit():
    # the exact SFT format ("It's in the third image. RightVentricle <box>[[...]]</box>") on real
    # MedSG-188K items: GRPO must not push the model away from what SFT taught
    from medmo.data.sources import Drops
    from medmo.data.sources.medsg_bench import convert

    records = list(convert(MEDSG_TRAIN, Drops()))
    targets, answers = [r.messages[-1]["content"] for r in records], [r.answer for r in records]
    assert len(records) > 100 and all(t.startswith("It's in the") for t in targets)
    assert min(giou_reward(targets, answer=answers)) > 0.95  # only the 0-1000 grid's rounding
    assert set(label_reward(targets, answer=answers)) == {1.0}
    assert set(format_reward(targets, answer=answers, task=["grounding"] * len(targets))) == {1.0}


MCQ = {"choices": {"A": "CT", "B": "MRI", "C": "X-ray"}, "letter": "B"}
YES = {"text": "yes", "closed": True}
ACCURACY_CASES = [
    ("yes", YES, "vqa", 1.0),  # closed yes/no
    ("No, it is not.", YES, "vqa", 0.0),  # wrong polarity
    ("normal", {"text": "no", "closed": True}, "vqa", 0.0),  # "no" is not found inside "normal"
    ("yes or no", YES, "vqa", 0.0),  # a hedge (scored "yes" before)
    ("Yes, there is a small effusion.", YES, "vqa", 1.0),  # yes with an explanation
    ("3", {"text": "3", "closed": True}, "vqa", 1.0),  # a count
    ("B", MCQ, "mcq", 1.0),  # the letter
    ("B\n\nBecause MRI shows soft tissue best.", MCQ, "mcq", 1.0),  # the letter, then reasons
    ("The answer is (B) MRI", MCQ, "mcq", 1.0),  # letter in a sentence
    ("A, B", MCQ, "mcq", 0.0),  # several letters
    ("A", MCQ, "mcq", 0.0),  # wrong letter
    ("<think>B</think>A", MCQ, "mcq", 0.0),  # the letter after the reasoning counts
    ("B", MCQ, "retrieval", 1.0),  # retrieval is multiple choice
    ("pleural effusion", {"text": "pleural effusion", "closed": False}, "vqa", None),  # open: not verifiable
    ("cell <box>[[1, 2, 3, 4]]</box>", ONE, "grounding", None),  # other tasks: skipped
]


@pytest.mark.parametrize("text,answer,task,expected", ACCURACY_CASES)
def test_accuracy_reward(text, answer, task, expected):
    assert accuracy_reward([text], answer=[answer], task=[task]) == [expected]


FORMAT_CASES = [
    ("cell <box>[[1, 2, 3, 4]]</box>", "grounding", ONE, 1.0),  # MedMO syntax
    ("cell <box>[[1, 2, 3, 4], [5, 6, 7, 8]]</box> nodule <box>[[1, 1, 2, 2]]</box>", "grounding", TWO, 1.0),  # groups
    ("The cell is at <box>[[1, 2, 3, 4]]</box> I think", "grounding", ONE, 0.0),  # trailing chatter
    ('[{"bbox_2d": [1, 2, 3, 4]}]', "grounding", ONE, 0.0),  # another syntax: parseable but not MedMO's
    ("cell <box>[[1, 2, 3]]</box>", "grounding", ONE, 0.0),  # three coordinates
    ("cell <box>[[5, 5, 5, 9]]</box>", "grounding", ONE, 0.0),  # zero-area box
    ("cell <box>[[-500, -500, 2000, 2000]]</box>", "grounding", ONE, 0.0),  # off the 0-1000 grid
    ("<think>cell <box>[[1, 2, 3, 4]]</box></think>", "grounding", ONE, 0.0),  # the box only inside the reasoning
    ("yes", "vqa", YES, 1.0),  # short closed answer
    ("yes\nbecause the image shows a cell in the upper left", "vqa", YES, 0.0),  # 2 lines
    ("B", "mcq", MCQ, 1.0),  # a letter
    ("", "mcq", MCQ, 0.0),  # empty
    ("The lungs are clear.", "report", {"findings": "clear"}, 1.0),  # any non-empty report
    ("a long open answer is fine", "vqa", {"text": "x", "closed": False}, None),  # open VQA: no fixed shape
]


@pytest.mark.parametrize("text,task,answer,expected", FORMAT_CASES)
def test_format_reward(text, task, answer, expected):
    assert format_reward([text], answer=[answer], task=[task]) == [expected]


THINK_CASES = [
    ("<think>The effusion blunts the left angle.</think>yes", "vqa", YES, 1.0),  # think, then the answer
    ("<think>Left upper zone.</think>cell <box>[[1, 2, 3, 4]]</box>", "grounding", ONE, 1.0),  # then boxes
    ("yes", "vqa", YES, 0.0),  # no reasoning
    ("<think>  </think>yes", "vqa", YES, 0.0),  # empty reasoning
    ("<think>reasons</think>", "vqa", YES, 0.0),  # no answer after it
    ("<think>reasons", "vqa", YES, 0.0),  # never closed
    ("<think>a</think><think>b</think>yes", "vqa", YES, 0.0),  # two blocks
    ("yes<think>a</think>yes", "vqa", YES, 0.0),  # not first
    ("<think>reasons</think>yes, and here is a long explanation of it", "vqa", YES, 0.0),  # answer not in shape
    ("<think>reasons</think>cell <box>[[1, 2, 3, 4]]</box> I think", "grounding", ONE, 0.0),  # boxes not in shape
    ("<think>reasons</think>a free open answer", "vqa", {"text": "x", "closed": False}, 1.0),  # open: non-empty
]


@pytest.mark.parametrize("text,task,answer,expected", THINK_CASES)
def test_think_format_reward(text, task, answer, expected):
    assert think_format_reward([text], answer=[answer], task=[task]) == [expected]


CXR = {"findings": "Small left pleural effusion. No pneumothorax.", "impression": "Effusion."}
CXR_NORMAL = {"text": "No acute cardiopulmonary process."}
LIVER = {"findings": "A 2.3 cm hypodense lesion in hepatic segment VII. No biliary ductal dilatation.",
         "impression": "Hepatic lesion, likely hemangioma."}
CHEST, CT = ("mimic_cxr", "xray"), ("medtrinity", "ct")
FACTUALITY_CASES = [
    ("Left pleural effusion. No pneumothorax.", CXR, CHEST, 1.0),  # same findings, different words
    ("No pleural effusion. No pneumothorax.", CXR, CHEST, 0.5),  # effusion negated: 1 of 2 agree
    ("Pleural effusion. Large pneumothorax.", CXR, CHEST, 0.5),  # pneumothorax flipped to positive
    ("Pleural effusion. No pneumothorax. Cardiomegaly.", CXR, CHEST, 2 / 3),  # one extra positive finding
    ("Pleural effusion.", CXR, CHEST, 0.5),  # pneumothorax not stated
    ("No acute cardiopulmonary process.", CXR_NORMAL, CHEST, 1.0),  # normal study, same words
    ("Lungs are clear. No effusion or pneumothorax.", CXR_NORMAL, CHEST, 1.0),  # normal, stated otherwise
    ("asdf qwerty", CXR_NORMAL, CHEST, 0.0),  # junk (1.0 before: read as "No Finding")
    ("x", CXR_NORMAL, CHEST, 0.0),  # one letter (1.0 before)
    ("No change.", CXR_NORMAL, CHEST, 0.0),  # states nothing
    ("No change in the left pleural effusion. No pneumothorax.", CXR, CHEST, 1.0),  # a persisting effusion is positive
    ("Hypodense lesion in hepatic segment VII, likely hemangioma. No biliary ductal dilatation.", LIVER, CT, 20 / 23),
    # ^ a CT report is not read with the chest labeler (it was "Lung Lesion"): content words, here 10 of
    #   the reference's 13 (it says "2.3" and repeats "hepatic lesion"), none wrong: F1 20/23
    ("Hypodense hepatic lesion.", LIVER, CT, 6 / 16),  # 3 of 13 words, precision 1
    ("No hepatic lesion. Biliary ductal dilatation.", LIVER, CT, 0.0),  # negations flipped: "no_hepatic" != "hepatic"
    ("asdf qwerty", LIVER, CT, 0.0),  # junk
    ("Left pleural effusion. No pneumothorax.", CXR, (None, None), 0.8),  # no source/modality: content words, 4 of 6
    ("", {"findings": "", "impression": ""}, CHEST, None),  # no reference text: skipped
]


@pytest.mark.parametrize("text,answer,origin,expected", FACTUALITY_CASES)
def test_factuality_reward(text, answer, origin, expected):
    got = factuality_reward([text], answer=[answer], task=["report"], source=[origin[0]], modality=[origin[1]])[0]
    assert got == (None if expected is None else pytest.approx(expected))


def test_content_overlap_ignores_the_prompt_and_clips_repeats():
    ref = "Findings: Hypodense hepatic lesion in segment VII. Impression: Hemangioma."
    prompt = "Describe the hepatic lesion in this CT."
    assert content_overlap(ref, "Describe the hepatic lesion in this CT.", prompt) == 0.0  # copying the prompt
    honest = content_overlap(ref, "Hypodense lesion in segment VII, a hemangioma.", prompt)
    repeated = content_overlap(ref, "hypodense " * 20 + "hemangioma " * 20, prompt)
    assert honest == pytest.approx(1.0) and repeated < 0.2  # counts clipped to the reference's
    assert content_overlap("Findings: Impression:", "anything") is None  # nothing to compare with


def test_factuality_skips_other_tasks():
    assert factuality_reward(["yes"], answer=[YES], task=["vqa"]) == [None]


# ------------------------------------------------------------------ adversarial completions
# Every hack a policy could find, as (what it tries, answer, task, columns, honest, hack, cap):
# under the 8B recipe's weights the hack's total reward must not exceed the honest answer's,
# nor `cap`, what the hack got right (usually the format credit alone; "was" = the rewards
# before issue 10). Where the "honest" column is a weaker answer (one exact box), the row shows
# that the junk added to it never raises its reward. Image 1000x1000 px, so grid = pixels.
RECIPE = yaml.safe_load((ROOT / "recipes" / "medmo-8b" / "stage4_grpo.yaml").read_text())
THREE = {"boxes": [{"bbox": [100, 100, 140, 140], "label": "lesion"}, {"bbox": [300, 300, 340, 350], "label": "lesion"},
                   {"bbox": [600, 600, 660, 640], "label": "lesion"}], "image_size": [1000, 1000]}
SMALL = {"boxes": [{"bbox": [450, 450, 500, 500], "label": "nodule"}], "image_size": [1000, 1000]}
Q_GROUND = {"prompts": [[{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                      "text": GROUND_TARGET.format(target="nodule")}]}]]}
Q_REPORT = {"prompts": [[{"role": "user", "content": [{"type": "text", "text": "Indication: evaluate for pneumonia. "
                                                      + REPORT}]}]], "source": ["mimic_cxr"], "modality": ["xray"]}
Q_CT = {"prompts": [[{"role": "user", "content": [{"type": "text", "text": REPORT}]}]],
        "source": ["medtrinity"], "modality": ["ct"]}
HONEST3 = "lesion <box>[[100, 100, 140, 140], [300, 300, 340, 350], [600, 600, 660, 640]]</box>"
EXACT1 = "lesion <box>[[100, 100, 140, 140]]</box>"
WHOLE = "[0, 0, 1000, 1000]"
NODULE = "nodule <box>[[450, 450, 500, 500]]</box>"
MCQ4 = {"choices": {"A": "CT", "B": "MRI", "C": "X-ray", "D": "PET"}, "letter": "B"}
LIVER_HONEST = "A 2.3 cm hypodense lesion in hepatic segment VII, likely hemangioma. No biliary ductal dilatation."
F = 0.1  # the 8B recipe's format weight: what a well-shaped but wrong answer may keep
ADVERSARIAL = [
    # --- grounding: the issue's hacks (before: 0.60, 1.27, 1.10 against 3 true boxes)
    ("exact box + two whole-image boxes", THREE, "grounding", {}, EXACT1,
     f"lesion <box>[[100, 100, 140, 140], {WHOLE}, {WHOLE}]</box>", 1 / 3 + 0.5 / 3 + F),  # = one exact box (was 1.27)
    ("three whole-image boxes", THREE, "grounding", {}, HONEST3, f"lesion <box>[{WHOLE}, {WHOLE}, {WHOLE}]</box>", F),  # was 1.10
    ("one whole-image box on a small lesion", SMALL, "grounding", {}, NODULE, f"nodule <box>[{WHOLE}]</box>", F),  # was 1.10
    ("a box beside the lesion, not on it", SMALL, "grounding", {}, NODULE, "nodule <box>[[500, 450, 550, 500]]</box>", F),
    ("near miss (IoU 0.33)", SMALL, "grounding", {}, NODULE, "nodule <box>[[465, 465, 515, 515]]</box>", F),  # was 1.21
    ("a sloppy box with the right label", SMALL, "grounding", {}, NODULE, "nodule <box>[[400, 400, 600, 600]]</box>", F),
    # --- grounding: our own
    ("box spam: a 5x5 grid of boxes", SMALL, "grounding", {}, NODULE,
     "nodule <box>[" + ", ".join(f"[{x}, {y}, {x + 200}, {y + 200}]" for x in range(0, 1000, 200)
                                 for y in range(0, 1000, 200)) + "]</box>", F),
    ("duplicated exact box", SMALL, "grounding", {}, NODULE,
     "nodule <box>[[450, 450, 500, 500], [450, 450, 500, 500]]</box>", 1 / 2 + 0.5 / 2 + F),  # the copy halves it
    ("duplicated group", SMALL, "grounding", {}, NODULE, NODULE + " " + NODULE, 1 / 2 + 0.5 / 2 + F),
    ("exact box, wrong label", SMALL, "grounding", {}, NODULE, "mass <box>[[450, 450, 500, 500]]</box>", 1 + F),
    ("label repeated before the box", SMALL, "grounding", {}, NODULE,
     "nodule nodule nodule <box>[[450, 450, 500, 500]]</box>", 1 + F),  # not the label: no label credit
    ("label-only text", SMALL, "grounding", {}, NODULE, "nodule", 0.0),
    ("prompt echo", SMALL, "grounding", Q_GROUND, NODULE, GROUND_TARGET.format(target="nodule"), 0.0),
    ("empty", SMALL, "grounding", {}, NODULE, "", 0.0),
    ("very long text after the box", SMALL, "grounding", {}, NODULE, NODULE + " because" + " the lesion" * 500, 1.5),
    ("box only inside <think>", SMALL, "grounding", {}, NODULE, f"<think>{NODULE}</think>", 0.0),  # was 1.50
    ("exact box in <think>, junk after", SMALL, "grounding", {}, NODULE,
     f"<think>{NODULE}</think>nodule <box>[{WHOLE}]</box>", F),
    ("answer inside and outside <think>", SMALL, "grounding", {}, NODULE, f"<think>{NODULE}</think>{NODULE}", 1.6),  # = honest
    ("unclosed <think> with the box", SMALL, "grounding", {}, NODULE, f"<think>{NODULE}", 0.0),  # was 1.50
    ("coordinates far off the grid", SMALL, "grounding", {}, NODULE, "nodule <box>[[-9000, -9000, 9000, 9000]]</box>", 0.0),
    ("zero-area box at the lesion", SMALL, "grounding", {}, NODULE, "nodule <box>[[475, 475, 475, 475]]</box>", 0.0),
    ("another box syntax (JSON)", SMALL, "grounding", {}, NODULE,
     '[{"bbox_2d": [450, 450, 500, 500], "label": "nodule"}]', 1.5),  # right boxes, not the taught format
    # --- closed VQA and multiple choice: hedges keep at most the format credit
    ("yes or no", YES, "vqa", {}, "yes", "yes or no", F),
    ("yes/no", YES, "vqa", {}, "yes", "Yes/no", F),
    ("either yes or no", YES, "vqa", {}, "yes", "either yes or no", F),
    ("yes and no", YES, "vqa", {}, "yes", "yes and no", F),
    ("no, yes", YES, "vqa", {}, "yes", "no, yes", F),
    ("yes repeated at length", YES, "vqa", {}, "yes", "yes " * 300, 1.0),  # it says yes; the format term objects
    ("question echo", YES, "vqa", {}, "yes", "Is there a pleural effusion?\nPlease output 'yes' or 'no'(no extra output).", 0.0),
    ("answer only in <think>", YES, "vqa", {}, "yes", "<think>yes</think>", 0.0),
    ("hedge after <think>", YES, "vqa", {}, "yes", "<think>yes</think>yes or no", F),
    ("empty", YES, "vqa", {}, "yes", "", 0.0),
    ("two letters", MCQ4, "mcq", {}, "B", "A, B", F),
    ("letters with or", MCQ4, "mcq", {}, "B", "B or C", F),
    ("every letter", MCQ4, "mcq", {}, "B", "A B C D", F),
    ("every letter, glued", MCQ4, "mcq", {}, "B", "ABCD", F),
    ("every letter, one per line", MCQ4, "mcq", {}, "B", "A\nB\nC\nD", 0.0),
    ("hedge after 'the answer is'", MCQ4, "mcq", {}, "B", "The answer is B or C.", F),
    ("every option's text", MCQ4, "mcq", {}, "B", "CT, MRI, X-ray, PET", F),
    ("a hedging sentence after the letter", MCQ4, "mcq", {}, "B", "The answer is B.\n\nPossibly C.", F),
    ("a hedging sentence after yes", YES, "vqa", {}, "yes", "Yes. It may be no.", F),
    ("a list after the closed answer", {"text": "MRI", "closed": True}, "vqa", {}, "MRI", "MRI, CT, X-ray and ultrasound", F),
    ("letter with a long explanation", MCQ4, "mcq", {}, "B", "B\n\nBecause" + " MRI shows soft tissue" * 100, 1.0),
    # --- reports: what states nothing keeps at most the format credit
    ("junk report", CXR_NORMAL, "report", Q_REPORT, "No acute cardiopulmonary process.", "asdf qwerty", F),  # was 1.10
    ("one letter", CXR_NORMAL, "report", Q_REPORT, "No acute cardiopulmonary process.", "x", F),  # was 1.10
    ("'no change'", CXR_NORMAL, "report", Q_REPORT, "No acute cardiopulmonary process.", "No change.", F),  # was 1.10
    ("report copying the indication", CXR, "report", Q_REPORT, "Small left pleural effusion. No pneumothorax.",
     "Evaluate for pneumonia.", F),
    ("report copying the prompt", CXR, "report", Q_REPORT, "Small left pleural effusion. No pneumothorax.", REPORT, F),
    ("every observation positive", CXR, "report", Q_REPORT, "Small left pleural effusion. No pneumothorax.",
     "Cardiomegaly, edema, consolidation, pneumonia, atelectasis, pneumothorax, pleural effusion, fracture, nodule.",
     1 / 9 + F),  # 1 of 9 stated observations agrees
    ("every observation hedged", CXR, "report", Q_REPORT, "Small left pleural effusion. No pneumothorax.",
     "Possible effusion. Possible pneumothorax. Possible pneumonia.", F),
    ("both polarities", CXR, "report", Q_REPORT, "Small left pleural effusion. No pneumothorax.",
     "Effusion. No effusion. Pneumothorax. No pneumothorax.", 0.5 + F),  # positive wins: pneumothorax is wrong
    ("repeated finding", CXR, "report", Q_REPORT, "Small left pleural effusion. No pneumothorax.", "Effusion. " * 50,
     0.5 + F),  # repeating adds nothing
    ("CT: junk", LIVER, "report", Q_CT, LIVER_HONEST, "asdf qwerty", F),  # was 1.10 (no pathology word: "No Finding")
    ("CT: copying the prompt", LIVER, "report", Q_CT, LIVER_HONEST, REPORT, F),
    ("CT: repeated words", LIVER, "report", Q_CT, LIVER_HONEST, "hepatic lesion " * 40, 0.3),  # was 1.10
    ("CT: medical vocabulary dump", LIVER, "report", Q_CT, LIVER_HONEST,
     " ".join(["hypodense hyperdense hepatic renal splenic lesion mass cyst hemangioma metastasis segment VII VIII "
               "biliary ductal dilatation enhancement calcification"] * 5), 0.3),  # was 1.10
    ("CT: negations flipped", LIVER, "report", Q_CT, LIVER_HONEST,
     "No hypodense lesion in hepatic segment VII. Biliary ductal dilatation.", F),
    ("CT: honest report plus a long tail", LIVER, "report", Q_CT, LIVER_HONEST,
     LIVER_HONEST + " The spleen, pancreas and kidneys are described" * 40, 0.3),  # was 1.10
]


def total_reward(text: str, answer: dict, task: str, columns: dict) -> float:
    funcs, weights = build_rewards(RECIPE["rewards"], RECIPE["reward_iou_threshold"])
    kwargs = {"answer": [answer], "task": [task], **columns}
    return sum(w * (f([text], **kwargs)[0] or 0.0) for f, w in zip(funcs, weights))


@pytest.mark.parametrize("what,answer,task,columns,honest,hack,cap", ADVERSARIAL, ids=[row[0] for row in ADVERSARIAL])
def test_no_hack_out_scores_the_honest_answer(what, answer, task, columns, honest, hack, cap):
    got = total_reward(hack, answer, task, columns)
    assert got <= total_reward(honest, answer, task, columns) + 1e-9
    assert got <= cap + 1e-9, f"{what}: {got:.3f} > {cap:.3f}"  # and it keeps no more than what it got right


ISSUE_NUMBERS = [
    # (completion against 3 true boxes, total under the 8B weights; the issue measured 0.60 / 1.27 / 1.10)
    (EXACT1, 1 / 3 + 0.5 / 3 + 0.1),  # one exact box: a third of giou and label, plus format
    (f"lesion <box>[[100, 100, 140, 140], {WHOLE}, {WHOLE}]</box>", 1 / 3 + 0.5 / 3 + 0.1),  # padding adds nothing
    (f"lesion <box>[{WHOLE}, {WHOLE}, {WHOLE}]</box>", 0.1),  # whole-image boxes: format only
    (HONEST3, 1.6),  # all three: giou 1 + label 0.5 + format 0.1
]


@pytest.mark.parametrize("text,expected", ISSUE_NUMBERS)
def test_the_issues_padding_numbers(text, expected):
    assert total_reward(text, THREE, "grounding", {}) == pytest.approx(expected)


def test_build_rewards_names_thresholds_and_did_you_mean():
    funcs, weights = build_rewards({"giou": 1.0, "accuracy": 0.5, "format": 0.1})
    assert [f.__name__ for f in funcs] == ["giou_reward", "accuracy_reward", "format_reward"]  # TRL logs these
    assert funcs[0].func is giou_reward and funcs[0].keywords == {"iou_threshold": 0.5}
    assert funcs[1:] == [accuracy_reward, format_reward] and weights == [1.0, 0.5, 0.1]
    assert set(REWARDS.names()) == {"giou", "label", "accuracy", "factuality", "format", "think_format"}
    with pytest.raises(ValueError, match="Did you mean 'giou'"):
        build_rewards({"gIoU": 1.0})
    with pytest.raises(ValueError, match="at least one term"):
        build_rewards({})


def test_rewards_return_one_value_per_completion():
    # a mixed batch, as GRPO sends it: every term answers every completion (None where it does not apply)
    comps = ["cell <box>[[100, 100, 500, 500]]</box>", "yes", "B", "Effusion."]
    answers = [ONE, YES, MCQ, CXR]
    tasks = ["grounding", "vqa", "mcq", "report"]
    for name in REWARDS.names():
        out = REWARDS.get(name)(comps, answer=answers, task=tasks, image_size=[None] * 4, source=[None] * 4,
                                modality=[None] * 4, prompts=[None] * 4, log_metric=lambda *a: None)
        assert len(out) == 4, name
    assert giou_reward(comps, answer=answers, task=tasks) == [1.0, None, None, None]
    assert accuracy_reward(comps, answer=answers, task=tasks) == [None, 1.0, 1.0, None]


@pytest.mark.parametrize("text", [
    "<think>cell <box>[[100, 100, 500, 500]]</box></think>",  # the right box only in the reasoning
    "<think>cell <box>[[100, 100, 500, 500]]</box></think>cell <box>[[0, 0, 1000, 1000]]</box>",  # junk after it
    "<think>hm</think>cell <box>[[100, 100, 500, 500]]</box>",  # the right box after the reasoning
])
def test_scorers_and_rewards_read_the_same_answer(text):
    # strict scoring, grounding scoring and the rewards all drop the think block (scoring.strip_think)
    from medmo.eval.grounding import score_grounding

    hit = score_grounding(ONE, text)["score"] == 1.0
    assert giou_reward([text], answer=[ONE]) == [1.0 if hit else 0.0]
    assert hit is text.endswith("500]]</box>")


def test_docstring_examples():
    # the reward functions' doctests are part of the suite (pytest here runs without --doctest-modules)
    import doctest

    import medmo.train.rewards

    result = doctest.testmod(medmo.train.rewards)
    assert result.attempted > 10 and result.failed == 0
