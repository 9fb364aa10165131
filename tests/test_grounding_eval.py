"""Grounding scoring (medmo.eval.grounding.score_grounding): table of hand-made responses, aggregation, MedSG reproduction."""
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


# ----------------------------------------------------------------- detection metrics
def _ref_iou(a, b):
    """IoU written out by hand."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0


def _ref_tp(pred, gt, t):
    """Most one-to-one pairs with IoU >= t, by trying every assignment of predictions to truths."""
    from itertools import permutations

    best = 0
    slots = list(range(len(gt))) + [None] * len(pred)  # None: this prediction matches nothing
    for assignment in set(permutations(slots, len(pred))):
        best = max(best, sum(1 for i, j in enumerate(assignment) if j is not None and _ref_iou(pred[i], gt[j]) >= t))
    return best


def _ref_metrics(images, t):
    """Micro / macro precision, recall, F1 at t and count MAE, from the definitions (0/0 rules of the docstring)."""
    tps = [_ref_tp(p, g, t) for p, g in images]
    P, G, TP = sum(len(p) for p, _ in images), sum(len(g) for _, g in images), sum(tps)

    def prec(tp, p, g):
        return tp / p if p else (1.0 if g == 0 else 0.0)

    def rec(tp, p, g):
        return tp / g if g else (1.0 if p == 0 else 0.0)

    def f1(tp, p, g):
        pr, rc = prec(tp, p, g), rec(tp, p, g)
        return 2 * pr * rc / (pr + rc) if pr + rc else 0.0

    per = [(tp, len(p), len(g)) for tp, (p, g) in zip(tps, images)]
    n = len(images)
    return {f"precision@{t}": prec(TP, P, G), f"recall@{t}": rec(TP, P, G), f"f1@{t}": f1(TP, P, G),
            f"macro_precision@{t}": sum(prec(*x) for x in per) / n, f"macro_recall@{t}": sum(rec(*x) for x in per) / n,
            f"macro_f1@{t}": sum(f1(*x) for x in per) / n,
            "count_mae": sum(abs(len(p) - len(g)) for p, g in images) / n}


A, B, C = [0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]
SLOPPY = [[2, 2, 12, 12], [22, 2, 32, 12], [42, 2, 52, 12]]  # each shifted (2, 2): IoU 64/136 = 0.47
DETECTION_CASES = [
    # (images as [(pred boxes, true boxes)], comment)
    ([([A], [A, B, C])], "one of three found perfectly: P 1, R 1/3"),
    ([(SLOPPY, [A, B, C])], "three sloppy boxes: all under 0.5, over 0.3"),
    ([([], [A, B])], "no predictions"),
    ([([A, B], [])], "no truths: every box a false positive"),
    ([([], [])], "nothing to find, nothing found: perfect"),
    ([([A, A, A], [A])], "duplicates: one true positive, two false"),
    ([([[0, 0, 10, 5]], [A]), ([[0, 0, 10, 3]], [A]), ([[0, 0, 10, 7]], [A])],
     "IoU exactly 0.5 / 0.3 / 0.7: >= counts"),
    ([([[0, 0, 10, 10], [0, 6.5, 10, 10]], [[0, 0, 10, 10], [0, 0, 10, 3.5]])],
     "at 0.3 the most pairs (two at 0.35) beat the most IoU (one at 1.0)"),
    ([([A, B], [A, B]), ([], [C]), ([C, SLOPPY[0]], [C])], "micro pools boxes, macro averages images"),
    ([([A, B, C], [C, B, A])], "order does not matter"),
]


@pytest.mark.parametrize("images,comment", DETECTION_CASES, ids=[c for _, c in DETECTION_CASES])
def test_detection_metrics_equal_reference(images, comment):
    from medmo.boxes import Box
    from medmo.eval.grounding import THRESHOLDS, detection_counts, detection_metrics

    counts = [detection_counts([Box.from_list(b) for b in p], [Box.from_list(b) for b in g]) for p, g in images]
    got = detection_metrics(counts)
    for t in THRESHOLDS:
        for key, want in _ref_metrics(images, t).items():
            assert got[key] == pytest.approx(want, abs=1e-12), (key, comment)


def test_same_set_iou_different_detection():
    """The issue's example: one of three cells found perfectly vs three sloppy boxes."""
    from medmo.boxes import Box, set_iou
    from medmo.eval.grounding import detection_counts, detection_metrics

    gt = [Box.from_list(b) for b in (A, B, C)]
    one, sloppy = [Box.from_list(A)], [Box.from_list(b) for b in SLOPPY]
    assert set_iou(one, gt) == pytest.approx(1 / 3) and set_iou(sloppy, gt) == pytest.approx(3 * 64 / 136 / 3)
    m_one, m_sloppy = (detection_metrics([detection_counts(p, gt)]) for p in (one, sloppy))
    assert (m_one["precision@0.5"], m_one["recall@0.5"], m_one["count_mae"]) == (1.0, pytest.approx(1 / 3), 2.0)
    assert (m_sloppy["precision@0.5"], m_sloppy["recall@0.5"], m_sloppy["count_mae"]) == (0.0, 0.0, 0.0)
    assert m_sloppy["f1@0.3"] == 1.0


def test_aggregate_carries_detection_metrics():
    """score_grounding stores the counts; aggregate_grounding reports them, and recomputes them for
    samples scored before the counts existed (parsed boxes + answer)."""
    samples = [score_grounding(TWO, "<box>[[0, 0, 100, 100]]</box>", "pixels"),
               score_grounding(TWO, "<box>[[0, 0, 100, 100], [500, 200, 600, 300], [0, 0, 9, 9]]</box>", "pixels")]
    agg = aggregate_grounding(samples)
    assert (agg["precision@0.5"], agg["recall@0.5"], agg["count_mae"]) == (pytest.approx(3 / 4), 3 / 4, 1.0)
    old = [{k: v for k, v in s.items() if k in ("parsed", "score", "parse_failure")} | {"answer": TWO} for s in samples]
    assert {k: v for k, v in aggregate_grounding(old).items()} == agg
    medsg = score_grounding(TWO, "<box>[[0, 0, 100, 100], [500, 200, 600, 300]]</box>", "pixels", protocol="medsg")
    assert (medsg["n_pred"], medsg["tp@0.5"]) == (1, 1)  # the protocol reads the first box only


def test_report_shows_detection_metrics(tmp_path):
    """results.md's grounding table and breakdowns carry P/R/F1@0.5 and count MAE; a plot shows them."""
    from medmo.eval.report import markdown, write_plots

    agg = aggregate_grounding([score_grounding(TWO, "<box>[[0, 0, 100, 100]]</box>", "pixels")])
    res = {"model": "m", "benchmarks": {"cell": {"kind": "benchmark", "family": "grounding", **agg,
                                                 "by_density": {"sparse": {"n": 1, "f1@0.5": 2 / 3, "count_mae": 1.0}}}}}
    md = markdown(res)
    assert "| F1@0.5 |" in md and "count MAE" in md
    assert "| 100.0 | 50.0 | 66.7 | 66.7 | 1.00 |" in md  # P, R, F1 micro, F1 per image, count MAE (not a %)
    assert "| sparse | 1 | 66.7 | 1.00 |" in md
    assert tmp_path / "detection_grounding.png" in write_plots(res, tmp_path)
