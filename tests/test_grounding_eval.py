"""Grounding scoring (contract 2): table of hand-made responses, aggregation, MedSG reproduction."""
import json

import pytest

from medmo.eval.grounding import aggregate_grounding, score_grounding

ANS = {"boxes": [{"bbox": [100, 100, 200, 200], "label": "nodule"}], "image_size": [1000, 500]}
TWO = {"boxes": [{"bbox": [0, 0, 100, 100]}, {"bbox": [500, 200, 600, 300]}], "image_size": [1000, 500]}

CASES = [
    # (answer, response, box_format, expected score, parse_failure)
    (ANS, "nodule <box>[[100, 200, 200, 400]]</box>", "grid", 1.0, False),  # grid -> pixels (y halves)
    (ANS, "nodule <box>[[100, 100, 200, 200]]</box>", "pixels", 1.0, False),  # pixel answer read as pixels
    (ANS, "nodule <box>[[100, 100, 200, 300]]</box>", "grid", 1 / 3, False),  # grid y 100-300 = px 50-150: half overlap
    (ANS, '```json\n[{"bbox_2d": [150, 100, 250, 200]}]\n```', "pixels", 1 / 3, False),  # Qwen JSON, shifted
    (ANS, "<|box_start|>(100,100),(200,200)<|box_end|>", "pixels", 1.0, False),  # Qwen2-VL syntax
    (ANS, "", "grid", 0.0, True),  # empty response
    (ANS, "I cannot see any nodule.", "grid", 0.0, True),  # no box at all
    (ANS, "[[1e300, 5, 7, nan]]", "grid", 0.0, True),  # absurd numbers
    (ANS, "<box>[[2000, 2000, 3000, 3000]]</box>", "pixels", 0.0, False),  # box outside the image: clamped, IoU 0
    (ANS, "<box>[[100, 100, 200, 200], [700, 0, 800, 100]]</box>", "pixels", 0.5, False),  # an extra box costs
    (TWO, "<box>[[0, 0, 100, 100], [500, 200, 600, 300]]</box>", "pixels", 1.0, False),  # two boxes, either order
    (TWO, "<box>[[500, 200, 600, 300]]</box>", "pixels", 0.5, False),  # a missing box costs
    ({"boxes": [], "image_size": [10, 10]}, "no findings", "grid", 1.0, False),  # nothing to find, nothing found
]


@pytest.mark.parametrize("answer,response,box_format,score,failure", CASES)
def test_score_table(answer, response, box_format, score, failure):
    out = score_grounding(answer, response, box_format)
    assert out["score"] == pytest.approx(score, abs=1e-9)
    assert out["parse_failure"] is failure
    assert all(len(b) == 4 for b in out["parsed"])


def test_parsed_boxes_are_pixels():
    out = score_grounding(ANS, "<box>[[100, 200, 200, 400]]</box>", "grid")
    assert out["parsed"] == [[100.0, 100.0, 200.0, 200.0]]


@pytest.mark.parametrize("answer,match", [
    ({"boxes": [{"bbox": [0, 0, 1, 1]}]}, "image_size"),  # pixel space unknown
    ({"boxes": [{"bbox": [0, 0, 1]}], "image_size": [10, 10]}, "x1, y1, x2, y2"),  # three numbers
    ({"boxes": [{"bbox": [20, 20, 30, 30]}], "image_size": [10, 10]}, "outside"),  # gt off the image
])
def test_malformed_ground_truth_is_a_clear_error(answer, match):
    with pytest.raises(ValueError, match=match):
        score_grounding(answer, "<box>[[0, 0, 5, 5]]</box>")


def test_aggregate_thresholds_and_failures():
    samples = [{"score": s, "parse_failure": s == 0.0} for s in (0.0, 0.3, 0.5, 0.69, 0.7, 1.0)]
    samples.append({"failure": "missing_image"})  # not scored: left out of n
    agg = aggregate_grounding(samples)
    assert agg["n"] == 6
    assert agg["mean_iou"] == pytest.approx(3.19 / 6)
    assert agg["iou@0.3"] == pytest.approx(5 / 6)  # >= threshold counts
    assert agg["iou@0.5"] == pytest.approx(4 / 6)
    assert agg["iou@0.7"] == pytest.approx(2 / 6)
    assert agg["parse_failures"] == 1
    assert aggregate_grounding([])["n"] == 0


def test_medsg_protocol_reproduces_published_aggregate(shared_data):
    items = json.loads((shared_data / "medsg_bench" / "qwen2_5_vl_referring_0410_135934.json").read_text())
    published = items[-1]["referring"]
    samples = [score_grounding({"boxes": [{"bbox": x["groundtruth"]}], "image_size": [336, 336]}, x["answer"],
                               "pixels", protocol="medsg") for x in items[:-1]]
    agg = aggregate_grounding(samples)
    assert agg["n"] == published["TOTAL"] == 1482
    assert agg["mean_iou"] * agg["n"] == pytest.approx(published["AVE_IOU"], abs=1e-9)
    for t in ("0.3", "0.5", "0.7"):
        assert round(agg[f"iou@{t}"] * agg["n"]) == published[f"IOU@{t}"]
