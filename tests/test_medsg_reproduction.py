"""Issue 2's reproduction: MedSG-Bench's published Qwen2.5-VL referring outputs, turned into
a medmo predictions file, scored by `medmo score --box-format pixels`, give the published
aggregate stored in the file's last element (1482 items; IoU sum 187.715, 92 hits at 0.5).

MedSG-Bench's rule (eval/utils.py calculate_iou + extract_bbox_strong): the FIRST box the
response contains, as written (no clamping to the 336x336 image), IoU >= t counts, a
response without a box scores 0. medmo's default "set" protocol differs on 283 items, and
the test pins down why: 262 single-box answers run off the image (clamping raises their
IoU) and 21 multi-box answers (set IoU over all boxes instead of the first one).
"""
from __future__ import annotations

import json

import pytest

from medmo.cli import main

FILE = "qwen2_5_vl_referring_0410_135934.json"
N = 1482
PUBLISHED = {"iou_sum": 187.7150475079984, "iou@0.3": 231, "iou@0.5": 92, "iou@0.7": 32}  # the file's last element


@pytest.fixture(scope="module")
def predictions(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("medsg") / "referring.jsonl"
    assert main(["data", "medsg-predictions", str(shared_data / "medsg_bench" / FILE), "--out", str(out)]) == 0
    return out


def score(predictions, out, *args) -> tuple[dict, list[dict]]:
    assert main(["score", "--predictions", str(predictions), "--box-format", "pixels", "--out", str(out),
                 "--no-plots", *args]) == 0
    (result,) = json.loads((out / "results.json").read_text())["benchmarks"].values()
    return result, [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_published_aggregate_is_what_the_file_says(shared_data):
    data = json.loads((shared_data / "medsg_bench" / FILE).read_text())
    assert data[-1] == {"referring": {"IOU@0.7": 32, "IOU@0.5": 92, "IOU@0.3": 231,
                                      "AVE_IOU": PUBLISHED["iou_sum"], "TOTAL": N}}
    assert sum(item["iou"] for item in data[:-1]) == pytest.approx(PUBLISHED["iou_sum"], abs=1e-9)  # a sum, not a mean


@pytest.mark.parametrize("args", [
    ("--grounding-protocol", "medsg"),                         # by task, MedSG's protocol
    ("--benchmark", "medsg_referring", "--mode", "medevalkit"),  # the benchmark's published-table mode
])
def test_medmo_score_reproduces_published_aggregate(predictions, tmp_path, shared_data, args):
    result, samples = score(predictions, tmp_path / "run", *args)
    assert result["n"] == N and result["n_failed"] == 0 and result["parse_failures"] == 0
    assert result["mean_iou"] == pytest.approx(PUBLISHED["iou_sum"] / N, abs=1e-12)
    for t in ("0.3", "0.5", "0.7"):
        assert round(result[f"iou@{t}"] * N) == PUBLISHED[f"iou@{t}"]
    published = [item["iou"] for item in json.loads((shared_data / "medsg_bench" / FILE).read_text())[:-1]]
    assert [s["score"] for s in samples] == pytest.approx(published, abs=1e-12)  # item by item, not just on average


def test_default_set_protocol_differs_for_known_reasons(predictions, tmp_path):
    strict, strict_samples = score(predictions, tmp_path / "set")
    medsg, medsg_samples = score(predictions, tmp_path / "medsg", "--grounding-protocol", "medsg")
    assert strict["mean_iou"] * N == pytest.approx(192.62850159418576, abs=1e-9)
    assert round(strict["iou@0.5"] * N) == 96
    differ = [(a, b) for a, b in zip(strict_samples, medsg_samples) if abs(a["score"] - b["score"]) > 1e-12]
    multi = [(a, b) for a, b in differ if len(a["parsed"]) > 1]
    single = [(a, b) for a, b in differ if len(a["parsed"]) == 1]
    assert (len(differ), len(multi), len(single)) == (283, 21, 262)
    # a single box can only differ by clamping: MedSG's unclamped box runs past 336 px
    assert all(max(b["parsed"][0]) > 336 and a["score"] > b["score"] for a, b in single)


def test_parse_failures_score_zero(predictions, tmp_path):
    rows = [json.loads(line) for line in predictions.read_text().splitlines()[:3]]
    rows[1]["response"] = "The region is not visible."
    small = tmp_path / "three.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result, samples = score(small, tmp_path / "run", "--grounding-protocol", "medsg")
    assert result["parse_failures"] == 1 and samples[1]["score"] == 0.0
    assert result["mean_iou"] == pytest.approx((samples[0]["score"] + samples[2]["score"]) / 3)
