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


def _reasoning_judge(body):
    """A judge that behaves like a reasoning model: under a small budget it spends everything
    thinking and returns empty content (cut); with room it answers whether the reference is stated."""
    from fake_openai import budget, user_text

    if budget(body) is None or budget(body) < 512:
        return {"content": "", "finish_reason": "length", "completion_tokens": budget(body) or 0}
    text = user_text(body)
    ref = text.split("Reference answer: ")[1].split("\n")[0].strip().lower()
    resp = text.split("Model answer: ")[1].split("\n")[0].lower()
    return {"content": "Yes." if ref in resp else "No.", "completion_tokens": 700}


def test_reasoning_judge_decides_every_open_vqa_rad_item_at_default_settings(shared_data, tmp_path):
    from fake_openai import FakeOpenAI, budget
    from medmo.eval.benchmarks import get_benchmark

    records = get_benchmark("vqa_rad").load(shared_data / "vqa_rad")
    with (tmp_path / "pred.jsonl").open("w") as f:
        for r in records:  # every answer states the reference
            row = r.to_dict()
            f.write(json.dumps({**row, "response": f"I can see {row['answer']['text']} in this image."}) + "\n")
    with FakeOpenAI(_reasoning_judge) as fake:
        assert main(["score", "--predictions", str(tmp_path / "pred.jsonl"), "--out", str(tmp_path / "out"),
                     "--benchmark", "vqa_rad", "--judge-model", "M", "--judge-base-url", fake.base_url,
                     "--no-plots"]) == 0
    assert min(budget(b) for b in fake.bodies) >= 512  # the default budget leaves room to think
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    rad = results["benchmarks"]["vqa_rad"]
    assert rad["n_open"] > 100  # strict mode: every open answer is worded, not an exact match, so the judge decides
    assert rad["judge"] == {"open": rad["n_open"], "judged": rad["n_open"], "fell_back": {}, "coverage": 1.0,
                            "complete": True}
    assert rad["open_accuracy"] == 1.0 and "incomplete" not in results
    assert results["judge_model"] == "M" and rad["protocol"]["judge_model"] == "M"
    md = (tmp_path / "out" / "results.md").read_text()
    assert f"| vqa_rad | {rad['n_open']} | {rad['n_open']} | – | 100.0 |" in md


def test_a_judge_that_cannot_decide_marks_the_run_incomplete(shared_data, tmp_path):
    from fake_openai import FakeOpenAI
    from medmo.eval.benchmarks import get_benchmark

    records = get_benchmark("vqa_rad").load(shared_data / "vqa_rad")[:60]
    with (tmp_path / "pred.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps({**r.to_dict(), "response": "something"}) + "\n")
    with FakeOpenAI(lambda body: {"content": "", "finish_reason": "length"}) as fake:  # never decides
        assert main(["score", "--predictions", str(tmp_path / "pred.jsonl"), "--out", str(tmp_path / "out"),
                     "--benchmark", "vqa_rad", "--judge-model", "M", "--judge-base-url", fake.base_url,
                     "--no-plots"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    judge = results["benchmarks"]["vqa_rad"]["judge"]
    assert judge["judged"] == 0 and judge["fell_back"] == {"judge_cut": judge["open"]} and not judge["complete"]
    assert "vqa_rad" in results["incomplete"]
    assert len(fake.bodies) == 2 * judge["open"]  # each open item: one try, one retry with the larger budget
    assert "**Incomplete run**" in (tmp_path / "out" / "results.md").read_text()
