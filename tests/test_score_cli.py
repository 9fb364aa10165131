"""`medmo score`: saved predictions scored without a model; MedSG-Bench's published aggregate reproduced."""
import json

import pytest

from medmo.cli import main


def _medsg_predictions(shared_data, path):
    """The MedSG-Bench referring result file as unified grounding records plus "response"."""
    items = json.loads((shared_data / "medsg_bench" / "qwen2_5_vl_referring_0410_135934.json").read_text())
    with path.open("w") as f:
        for i, x in enumerate(items[:-1]):
            rec = {"id": f"medsg_referring/test/{i}", "source": "medsg_bench", "split": "test", "task": "grounding",
                   "images": [], "messages": [{"role": "user", "content": x["question"]}],
                   "answer": {"boxes": [{"bbox": x["groundtruth"]}], "image_size": [336, 336]},
                   "response": x["answer"]}
            f.write(json.dumps(rec) + "\n")
    return items[-1]["referring"]


def test_medsg_published_aggregate_reproduced(shared_data, tmp_path):
    published = _medsg_predictions(shared_data, tmp_path / "pred.jsonl")
    rc = main(["score", "--predictions", str(tmp_path / "pred.jsonl"), "--out", str(tmp_path / "out"),
               "--box-format", "pixels", "--grounding-protocol", "medsg", "--no-plots"])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())["benchmarks"]["pred"]
    assert res["n"] == published["TOTAL"] == 1482
    assert res["mean_iou"] * res["n"] == pytest.approx(published["AVE_IOU"], abs=1e-9)  # 187.715...
    assert round(res["iou@0.5"] * res["n"]) == published["IOU@0.5"] == 92
    assert round(res["iou@0.3"] * res["n"]) == published["IOU@0.3"]
    assert res["parse_failures"] == 0 and res["n_failed"] == 0
    lines = (tmp_path / "out" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 1482 and "score" in json.loads(lines[0])


def test_default_protocol_clamps_and_counts_extra_boxes(shared_data, tmp_path):
    _medsg_predictions(shared_data, tmp_path / "pred.jsonl")
    assert main(["score", "--predictions", str(tmp_path / "pred.jsonl"), "--out", str(tmp_path / "out"),
                 "--box-format", "pixels", "--no-plots"]) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())["benchmarks"]["pred"]
    # boxes running off the 336 px image are clamped (IoU rises), second boxes cost: 192.63 / 96 hits
    assert res["mean_iou"] * res["n"] == pytest.approx(192.6285, abs=1e-3)
    assert round(res["iou@0.5"] * res["n"]) == 96


def test_bad_lines_are_counted(tmp_path):
    good = {"id": "a", "source": "s", "split": "test", "task": "grounding", "images": [],
            "messages": [{"role": "user", "content": "find it"}],
            "answer": {"boxes": [{"bbox": [0, 0, 50, 50]}], "image_size": [100, 100]}}
    lines = [
        json.dumps({**good, "response": "<box>[[0, 0, 500, 500]]</box>"}),  # grid: exactly the box
        json.dumps({**good, "id": "b", "response": ""}),  # empty response: scored 0
        json.dumps({**good, "id": "c", "response": "[[1e999, 0, 5, 5]]"}),  # absurd numbers: parse failure
        json.dumps({**good, "id": "d"}),  # no response field
        "{not json",  # malformed line
        json.dumps({**good, "id": "e", "response": "x", "answer": {"boxes": [{"bbox": [0, 0, 1, 1]}]}}),  # no size
    ]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["score", "--predictions", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())["benchmarks"]["p"]
    assert res["n"] == 3 and res["mean_iou"] == pytest.approx(1 / 3)
    assert res["parse_failures"] == 2
    assert res["failures"] == {"empty_response": 1, "malformed_row": 3}
    md = (tmp_path / "o" / "results.md").read_text()
    assert "malformed_row" in md


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["score", "--predictions", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.jsonl: no such records file" in capsys.readouterr().err
