"""The evaluation's seams: ScoringOptions reach every scorer, and `medmo score --benchmark` honours them."""
import json

import pytest

from medmo.cli import main
from medmo.eval.options import MODES, ScoringOptions

MEDSG = "qwen2_5_vl_referring_0410_135934.json"


def _predictions(shared_data, path, n=200):
    """The first `n` items of MedSG-Bench's referring result file as grounding records plus "response"."""
    items = json.loads((shared_data / "medsg_bench" / MEDSG).read_text())[:-1][:n]
    with path.open("w") as f:
        for i, x in enumerate(items):
            f.write(json.dumps({"id": f"medsg_referring/test/{i}", "source": "medsg_bench", "split": "test",
                                "task": "grounding", "images": [],
                                "messages": [{"role": "user", "content": x["question"]}],
                                "answer": {"boxes": [{"bbox": x["groundtruth"]}], "image_size": [336, 336]},
                                "response": x["answer"]}) + "\n")
    return [x["iou"] for x in items]


def _score(path, out, *args):
    assert main(["score", "--predictions", str(path), "--out", str(out), "--box-format", "pixels", "--no-plots",
                 *args]) == 0
    results = json.loads((out / "results.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return results, [s["score"] for s in samples]


def test_score_benchmark_honours_the_grounding_protocol(shared_data, tmp_path):
    published = _predictions(shared_data, tmp_path / "p.jsonl")
    bench = ("--benchmark", "medsg_referring")
    # the protocol given wins over the mode's: strict mode, MedSG's rule -> the published IoUs
    medsg, medsg_scores = _score(tmp_path / "p.jsonl", tmp_path / "a", *bench, "--grounding-protocol", "medsg")
    assert medsg_scores == pytest.approx(published, abs=1e-12)
    assert medsg["grounding_protocol"] == "medsg" and medsg["mode"] == "strict"
    # medevalkit mode without a protocol takes the benchmark's published one
    _, mek_scores = _score(tmp_path / "p.jsonl", tmp_path / "b", *bench, "--mode", "medevalkit")
    assert mek_scores == medsg_scores
    # medevalkit mode with --grounding-protocol set is set IoU, as written into results.json
    set_res, set_scores = _score(tmp_path / "p.jsonl", tmp_path / "c", *bench, "--mode", "medevalkit",
                                 "--grounding-protocol", "set")
    by_task, task_scores = _score(tmp_path / "p.jsonl", tmp_path / "d")  # by task, the default protocol: set
    assert set_res["grounding_protocol"] == "set" and set_scores == task_scores != medsg_scores


def test_scoring_options_are_one_declared_value():
    assert MODES == ("strict", "medevalkit")
    assert ScoringOptions.of("medevalkit") == ScoringOptions(mode="medevalkit")
    assert ScoringOptions().grounding("medsg") == "set"  # strict: set IoU whatever the benchmark published
    assert ScoringOptions("medevalkit").grounding("medsg") == "medsg"
    assert ScoringOptions("medevalkit", grounding_protocol="set").grounding("medsg") == "set"
    with pytest.raises(ValueError, match="unknown scoring mode"):
        ScoringOptions("lenient")
    with pytest.raises(ValueError, match="grounding protocol"):
        ScoringOptions(grounding_protocol="first")
    with pytest.raises(AttributeError):
        ScoringOptions().mode = "medevalkit"  # frozen: a scorer cannot change what the next one sees


# ----------------------------------------------------------------------------- the one-pass run
def _records(n):
    return [{"id": f"q{i}", "source": "t", "split": "test", "task": "vqa", "images": [],
             "messages": [{"role": "user", "content": f"Is it {i}?"}], "answer": {"text": "yes", "closed": True}}
            for i in range(n)]


def test_resume_and_shards_are_properties_of_the_plan():
    from medmo.eval.units import plan, records_unit

    unit = records_unit("r", _records(10))
    latest = {("r", "q0"): {"id": "q0", "benchmark": "r", "response": "yes"},  # done
              ("r", "q2"): {"id": "q2", "benchmark": "r", "failure": "missing_image"},  # failed: asked again
              ("r", "q4"): {"id": "q4", "benchmark": "r", "response": "x", "judge_status": "judge_timeout"}}
    p = plan([unit], latest, limit=6, shard="0/2", rejudge=True)  # items 0, 2, 4 of the first 6
    assert [it.record["id"] for it in p.items] == ["q2", "q4"] and p.done == 2 and p.new == 1
    assert p.items[1].saved is latest[("r", "q4")]  # only the judge is asked again, with the saved response
    assert [it.record["id"] for it in plan([records_unit("r", _records(10))], latest, limit=6, shard="0/2").items] \
        == ["q2"]  # without a judge a finished sample is finished
    assert [[it.record["id"] for it in c] for c in plan([records_unit("r", _records(5))], {}).chunks(2)] == \
        [["q0", "q1"], ["q2", "q3"], ["q4"]]


class PerItem:
    """A backend whose second request fails and whose answers are cut at the budget: per-item results only."""

    max_new_tokens = 8

    def generations(self, requests):
        from medmo.eval.backends import Generation

        return [Generation(error="HTTP 500") if i == 1 else Generation("yes", finish_reason="length", tokens=8)
                for i, _ in enumerate(requests)]


def test_every_written_key_is_declared_and_errors_come_back_per_item(tmp_path):
    from typing import get_type_hints

    from medmo.eval.runner import evaluate_records
    from medmo.eval.samples import Sample

    res = evaluate_records(PerItem(), _records(3), tmp_path / "run", batch_size=4)
    assert res["n"] == 2 and res["failures"] == {"backend_error": 1, "cut_at_max_new_tokens": 2}
    lines = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [s.get("failure") for s in lines] == [None, "backend_error", None] and lines[1]["error"] == "HTTP 500"
    declared = set(get_type_hints(Sample))
    assert {k for s in lines for k in s} <= declared

