"""Reward terms on hand-made cases (one comment per case), and the recipe weights."""
import json

import pytest

from medmo.train.rewards import (REWARDS, accuracy_reward, build_rewards, completion_text, factuality_reward,
                                 format_reward, giou_reward, label_reward)

# 100x100 image: grid coordinates are 10x the pixels.
ONE = {"boxes": [{"bbox": [10, 10, 50, 50], "label": "cell"}], "image_size": [100, 100]}
TWO = {"boxes": [{"bbox": [10, 10, 30, 30], "label": "cell"}, {"bbox": [60, 60, 90, 90], "label": "nodule"}],
       "image_size": [100, 100]}

GIOU_CASES = [
    ("cell <box>[[100, 100, 500, 500]]</box>", ONE, 1.0),  # exact box
    ("cell <box>[[100, 100, 500, 500], [600, 600, 900, 900]]</box>", ONE, 0.5),  # one extra box halves it
    ("cell <box>[[600, 600, 900, 900], [100, 100, 300, 300]]</box>", TWO, 1.0),  # order does not matter
    ("there is a cell", ONE, 0.0),  # no box at all
    ("", ONE, 0.0),  # empty answer
    ("cell <box>[[100, 100, 500, 500]]</box>", {"text": "yes", "closed": True}, None),  # not grounding: skipped
    ("nothing", {"boxes": [], "image_size": [100, 100]}, 1.0),  # nothing to find, nothing found
]


@pytest.mark.parametrize("text,answer,expected", GIOU_CASES)
def test_giou_reward(text, answer, expected):
    assert giou_reward([text], answer=[answer]) == [expected]


def test_giou_of_a_shifted_box():
    # pred [20,20,60,60] vs gt [10,10,50,50] (pixels): IoU 900/2300, hull 50x50 = union + 200,
    # GIoU = 9/23 - 200/2500, mapped to (GIoU + 1) / 2
    expected = (9 / 23 - 200 / 2500 + 1) / 2
    assert giou_reward(["c <box>[[200, 200, 600, 600]]</box>"], answer=[ONE]) == [pytest.approx(expected)]


def test_giou_partial_and_disjoint_values():
    # one of two gt boxes found exactly, the other missed: (1 + 0) / 2
    assert giou_reward(["c <box>[[100, 100, 300, 300]]</box>"], answer=[TWO]) == [pytest.approx(0.5)]
    # disjoint box: GIoU = -(hull - union) / hull < 0, mapped into (0, 0.5)
    r = giou_reward(["c <box>[[550, 550, 950, 950]]</box>"], answer=[ONE])[0]
    assert 0.0 < r < 0.5
    # box spam: 10 copies of the right box score 1/10
    spam = "c <box>[" + ", ".join(["[100, 100, 500, 500]"] * 10) + "]</box>"
    assert giou_reward([spam], answer=[ONE]) == [pytest.approx(0.1)]


def test_image_size_column_wins_and_answer_may_be_json():
    # the dataset's image_size column gives the pixel space; the answer arrives as JSON text
    ans = json.dumps({"boxes": [{"bbox": [20, 20, 100, 100]}], "image_size": [999, 999]})
    assert giou_reward(["c <box>[[100, 100, 500, 500]]</box>"], answer=[ans], image_size=[[200, 200]]) == [1.0]


def test_conversational_completions():
    conv = [{"role": "assistant", "content": "cell <box>[[100, 100, 500, 500]]</box>"}]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "yes"}]}]
    assert completion_text(conv) == conv[0]["content"] and completion_text(parts) == "yes"
    assert giou_reward([conv], answer=[ONE]) == [1.0]


LABEL_CASES = [
    ("cell <box>[[100, 100, 300, 300]]</box> nodule <box>[[600, 600, 900, 900]]</box>", TWO, 1.0),  # both right
    ("cell <box>[[100, 100, 300, 300], [600, 600, 900, 900]]</box>", TWO, 0.5),  # second label wrong
    ("Nodule <box>[[600, 600, 900, 900]]</box>", TWO, 0.5),  # right label, case-insensitive; one box missing
    ("no boxes", TWO, 0.0),  # nothing predicted
    ("c <box>[[1, 1, 2, 2]]</box>", {"boxes": [{"bbox": [0, 0, 5, 5]}], "image_size": [10, 10]}, None),  # unlabelled gt
]


@pytest.mark.parametrize("text,answer,expected", LABEL_CASES)
def test_label_reward(text, answer, expected):
    assert label_reward([text], answer=[answer]) == [expected]


MCQ = {"choices": {"A": "CT", "B": "MRI", "C": "X-ray"}, "letter": "B"}
ACCURACY_CASES = [
    ("yes", {"text": "yes", "closed": True}, "vqa", 1.0),  # closed yes/no
    ("No, it is not.", {"text": "yes", "closed": True}, "vqa", 0.0),  # wrong polarity
    ("normal", {"text": "no", "closed": True}, "vqa", 0.0),  # "no" is not found inside "normal"
    ("3", {"text": "3", "closed": True}, "vqa", 1.0),  # a count
    ("B", MCQ, "mcq", 1.0),  # the letter
    ("The answer is (B) MRI", MCQ, "mcq", 1.0),  # letter in a sentence
    ("A", MCQ, "mcq", 0.0),  # wrong letter
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
    ("yes", "vqa", {"text": "yes", "closed": True}, 1.0),  # short closed answer
    ("yes\nbecause the image shows a cell in the upper left", "vqa", {"text": "yes", "closed": True}, 0.0),  # 2 lines
    ("B", "mcq", MCQ, 1.0),  # a letter
    ("", "mcq", MCQ, 0.0),  # empty
    ("The lungs are clear.", "report", {"findings": "clear"}, 1.0),  # any non-empty report
    ("a long open answer is fine", "vqa", {"text": "x", "closed": False}, None),  # open VQA: no fixed shape
]


@pytest.mark.parametrize("text,task,answer,expected", FORMAT_CASES)
def test_format_reward(text, task, answer, expected):
    assert format_reward([text], answer=[answer], task=[task]) == [expected]


REPORT = {"findings": "Small left pleural effusion. No pneumothorax.", "impression": "Effusion."}
FACTUALITY_CASES = [
    ("Left pleural effusion. No pneumothorax.", REPORT, 1.0),  # same findings, different words
    # effusion negated, and the labeler then calls it "No Finding": 1 of 3 observations agree
    ("No pleural effusion. No pneumothorax.", REPORT, 1 / 3),
    ("Pleural effusion. Large pneumothorax.", REPORT, 0.5),  # pneumothorax flipped to positive
    ("Pleural effusion. No pneumothorax. Cardiomegaly.", REPORT, 2 / 3),  # one extra positive finding
    ("", {"findings": "", "impression": ""}, None),  # no reference text: skipped
]


@pytest.mark.parametrize("text,answer,expected", FACTUALITY_CASES)
def test_factuality_reward(text, answer, expected):
    got = factuality_reward([text], answer=[answer], task=["report"])[0]
    assert got == (None if expected is None else pytest.approx(expected))


def test_factuality_skips_other_tasks():
    assert factuality_reward(["yes"], answer=[{"text": "yes", "closed": True}], task=["vqa"]) == [None]


def test_build_rewards_and_did_you_mean():
    funcs, weights = build_rewards({"giou": 1.0, "accuracy": 0.5, "format": 0.1})
    assert funcs == [giou_reward, accuracy_reward, format_reward] and weights == [1.0, 0.5, 0.1]
    assert set(REWARDS.names()) == {"giou", "label", "accuracy", "factuality", "format"}
    with pytest.raises(ValueError, match="Did you mean 'giou'"):
        build_rewards({"gIoU": 1.0})
    with pytest.raises(ValueError, match="at least one term"):
        build_rewards({})


def test_rewards_return_one_value_per_completion():
    # a mixed batch, as GRPO sends it: every term answers every completion (None where it does not apply)
    comps = ["cell <box>[[100, 100, 500, 500]]</box>", "yes", "B"]
    answers = [ONE, {"text": "yes", "closed": True}, MCQ]
    tasks = ["grounding", "vqa", "mcq"]
    for name in REWARDS.names():
        out = REWARDS.get(name)(comps, answer=answers, task=tasks, image_size=[None] * 3)
        assert len(out) == 3, name
    assert giou_reward(comps, answer=answers, task=tasks) == [1.0, None, None]
    assert accuracy_reward(comps, answer=answers, task=tasks) == [None, 1.0, 1.0]
