"""The evaluation runner: resume without recomputation, failures by reason, shards, judge, CLI."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from fake_openai import FakeOpenAI, user_text
from medmo.cli import main
from medmo.config import load_config
from medmo.data.schema import write_jsonl
from medmo.eval.backends import HFBackend
from medmo.eval.judge import JudgeConfig
from medmo.eval.offline import merge
from medmo.eval.runner import EvalConfig, evaluate_records, run


class Counting:
    """Wraps a backend and counts what it is asked (resume must ask nothing twice)."""

    def __init__(self, inner):
        self.inner, self.calls, self.requests = inner, 0, 0
        self.name = getattr(inner, "name", type(inner).__name__)
        self.fingerprint = getattr(inner, "fingerprint", None)

    def generate(self, requests):
        self.calls += 1
        self.requests += len(requests)
        return self.inner.generate(requests)


class Scripted:
    """A stand-in model answering from a table keyed by prompt text (for scoring-path tests)."""

    def __init__(self, answers):
        self.answers = answers

    def generate(self, requests):
        return [self.answers.get(r.messages[-1]["content"].replace("<image>", ""), "") for r in requests]


def _img(path, size=(64, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path.name


def _ground(i, image, box=(10, 10, 30, 30)):
    return {"id": f"g{i}", "source": "t", "split": "test", "task": "grounding", "images": [image],
            "messages": [{"role": "user", "content": f"<image>Find lesion {i}."}],
            "answer": {"boxes": [{"bbox": list(box), "label": "lesion"}], "image_size": [64, 48]}}


def _vqa(i, image, answer="yes"):
    return {"id": f"q{i}", "source": "t", "split": "test", "task": "vqa", "images": [image],
            "messages": [{"role": "user", "content": f"<image>Is lesion {i} present?"}],
            "answer": {"text": answer, "closed": True}}


@pytest.fixture
def records(tmp_path):
    img = _img(tmp_path / "data" / "a.png")
    rows = [_ground(i, img) for i in range(4)] + [_vqa(i, img) for i in range(3)]
    return rows, tmp_path / "data"


ANSWERS = {f"Find lesion {i}.": "lesion <box>[[156, 208, 469, 625]]</box>" for i in range(4)}  # = (10,10,30,30) px
ANSWERS.update({"Is lesion 0 present?": "Yes.", "Is lesion 1 present?": "no", "Is lesion 2 present?": "Yes"})


def test_scores_by_task_and_resume_recomputes_nothing(records, tmp_path):
    rows, base = records
    backend = Counting(Scripted(ANSWERS))
    res = evaluate_records(backend, rows, tmp_path / "run", base_dir=base, batch_size=2)
    assert res["n"] == 7 and res["mean_iou"] == pytest.approx(1.0, abs=0.01)
    assert res["accuracy"] == pytest.approx(2 / 3)
    assert backend.requests == 7
    calls = backend.calls
    again = evaluate_records(backend, rows, tmp_path / "run", base_dir=base, batch_size=2)
    assert backend.calls == calls  # not a single generate call on resume
    assert again == res
    assert len((tmp_path / "run" / "samples.jsonl").read_text().splitlines()) == 7


def test_interrupted_run_finishes_only_the_rest(records, tmp_path):
    rows, base = records
    evaluate_records(Scripted(ANSWERS), rows, tmp_path / "run", base_dir=base, batch_size=2)
    log = tmp_path / "run" / "samples.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])  # killed mid-write
    backend = Counting(Scripted(ANSWERS))
    res = evaluate_records(backend, rows, tmp_path / "run", base_dir=base, batch_size=2)
    assert backend.requests == 4  # 7 - 3 finished
    assert res["n"] == 7 and res["accuracy"] == pytest.approx(2 / 3)


def test_bad_items_are_counted_never_raised(records, tmp_path):
    rows, base = records
    (base / "corrupt.png").write_bytes(b"not a png at all")
    rows = rows + [
        _ground(10, "missing.png"),  # missing image
        _ground(11, "corrupt.png"),  # corrupt image
        _ground(12, rows[0]["images"][0], box=(100, 100, 120, 120)),  # ground truth outside the 64x48 image
        _ground(13, rows[0]["images"][0]),  # empty response (not in ANSWERS)
    ]
    res = evaluate_records(Scripted(ANSWERS), rows, tmp_path / "run", base_dir=base)
    assert res["failures"] == {"corrupt_image": 1, "empty_response": 1, "malformed_row": 1, "missing_image": 1}
    assert res["n"] == 8 and res["n_failed"] == 3  # the empty answer is scored (IoU 0), the others are not
    lines = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    missing = next(x for x in lines if x["id"] == "g10")
    assert missing["failure"] == "missing_image" and "missing.png" in missing["error"]
    # a fixed image is retried on the next run; finished samples are not
    _img(base / "missing.png")
    backend = Counting(Scripted(ANSWERS))
    res = evaluate_records(backend, rows, tmp_path / "run", base_dir=base)
    assert backend.requests == 2  # g10 (now present) and g11 (still corrupt)
    assert res["failures"]["corrupt_image"] == 1 and "missing_image" not in res["failures"]


def test_judge_timeout_is_counted_and_rule_score_kept(tmp_path):
    img = _img(tmp_path / "a.png")
    rows = [{"id": "o1", "source": "t", "split": "test", "task": "vqa", "images": [img],
             "messages": [{"role": "user", "content": "<image>What organ?"}], "answer": {"text": "liver", "closed": False}}]
    with FakeOpenAI(lambda body: __import__("time").sleep(0.5) or "yes") as fake:
        judge = JudgeConfig(model="j", base_url=fake.base_url, timeout=0.1, retries=0)
        res = evaluate_records(Scripted({"What organ?": "the liver, I think"}), rows, tmp_path / "run",
                               base_dir=tmp_path, judge=judge)
    assert res["failures"] == {"judge_timeout": 1}
    assert res["n"] == 1 and res["accuracy"] == 0.0  # the rule score (no exact match) stands
    assert res["judge"] == {"open": 1, "judged": 0, "fell_back": {"judge_timeout": 1}, "coverage": 0.0,
                            "complete": False}
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["incomplete"] == {"records": "judge decided 0 of 1 open items (0.0% < 95%)"}


def test_judge_verdict_decides_open_answers(tmp_path):
    img = _img(tmp_path / "a.png")
    rows = [{"id": "o1", "source": "t", "split": "test", "task": "vqa", "images": [img],
             "messages": [{"role": "user", "content": "<image>What organ?"}], "answer": {"text": "liver", "closed": False}}]
    with FakeOpenAI(lambda body: "yes" if "hepatic" in user_text(body) else "no") as fake:
        judge = JudgeConfig(model="judge-x", base_url=fake.base_url)
        res = evaluate_records(Scripted({"What organ?": "the hepatic organ"}), rows, tmp_path / "run",
                               base_dir=tmp_path, judge=judge)
    assert res["accuracy"] == 1.0  # no exact match, but the judge says yes
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["judge_model"] == "judge-x"


def test_shards_merge_to_the_full_run(records, tmp_path, monkeypatch):
    rows, base = records
    path = tmp_path / "recs.jsonl"
    write_jsonl(rows, path)
    (base / "recs.jsonl").write_bytes(path.read_bytes())
    import medmo.eval.runner as runner

    monkeypatch.setattr(runner, "_backend", lambda cfg: Scripted(ANSWERS))
    full = run(EvalConfig(model="m", records=str(base / "recs.jsonl"), out=str(tmp_path / "full"), plots=False))
    shards = [run(EvalConfig(model="m", records=str(base / "recs.jsonl"), out=str(tmp_path / "sh"),
                             shard=f"{i}/3", plots=False)) for i in range(3)]
    assert [s.name for s in shards] == ["shard-0-of-3", "shard-1-of-3", "shard-2-of-3"]
    merged = merge(shards, tmp_path / "merged", plots=False)
    a = json.loads((full / "results.json").read_text())["benchmarks"]["recs"]
    b = json.loads((merged / "results.json").read_text())["benchmarks"]["recs"]
    assert a == b and a["n"] == 7


def test_openai_backend_end_to_end(records, tmp_path):
    rows, base = records

    def reply(body):
        assert body["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
        return ANSWERS.get(user_text(body), "")

    with FakeOpenAI(reply) as fake:
        cfg = EvalConfig(model="served", backend="openai", base_url=fake.base_url, records=str(base / "r.jsonl"),
                         out=str(tmp_path / "run"), plots=False)
        write_jsonl(rows, base / "r.jsonl")
        out = run(cfg)
    res = json.loads((out / "results.json").read_text())["benchmarks"]["r"]
    assert res["mean_iou"] == pytest.approx(1.0, abs=0.01) and res["n"] == 7


def test_a_folder_of_another_model_is_not_resumed(records, tmp_path, monkeypatch):
    rows, base = records
    write_jsonl(rows, base / "r.jsonl")
    import medmo.eval.runner as runner

    monkeypatch.setattr(runner, "_backend", lambda cfg: Scripted(ANSWERS))
    run(EvalConfig(model="a", records=str(base / "r.jsonl"), out=str(tmp_path / "run"), plots=False))
    with pytest.raises(ValueError, match="different model"):  # the CLI refuses: the user picks the folder
        run(EvalConfig(model="b", records=str(base / "r.jsonl"), out=str(tmp_path / "run"), plots=False))


def test_repeated_ids_are_evaluated_once_and_counted(records, tmp_path):
    rows, base = records
    res = evaluate_records(Scripted(ANSWERS), rows + rows[:2], tmp_path / "run", base_dir=base)
    assert res["n"] == 7 and res["failures"] == {"duplicate_id": 2}


def test_config_errors_fail_before_any_model_loads(tmp_path):
    # the model path does not exist: the benchmark name must be what fails
    rc = main(["eval", "--model", str(tmp_path / "nope"), "--benchmark", "vqarad", "--out", str(tmp_path / "o")])
    assert rc == 2 and not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="Did you mean 'limit'"):
        load_config(EvalConfig, None, ["limt=3"], model="m", benchmarks=["vqa_rad"])
    with pytest.raises(ValueError, match="shard"):
        EvalConfig(model="m", benchmarks=["vqa_rad"], shard="3/2")
    with pytest.raises(ValueError, match="nothing to evaluate"):
        EvalConfig(model="m")


def test_vqa_rad_end_to_end_with_tiny_model(tiny_dir, tmp_path):
    rc = main(["eval", "--model", str(tiny_dir), "--benchmark", "vqa_rad", "--limit", "3", "--max-new-tokens", "4",
               "--max-pixels", str(128 * 128), "--out", str(tmp_path / "rad"), "--no-plots"])
    assert rc == 0
    res = json.loads((tmp_path / "rad" / "results.json").read_text())
    rad = res["benchmarks"]["vqa_rad"]
    assert rad["n"] + rad["n_failed"] == 3 and rad["family"] == "vqa"
    assert 0.0 <= rad["accuracy"] <= 1.0
    assert "| vqa_rad | 3 |" in (tmp_path / "rad" / "results.md").read_text()


def test_hf_backend_through_the_runner_is_resumable(tiny_dir, records, tmp_path):
    rows, base = records
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_dir, ckpt)
    backend = Counting(HFBackend(ckpt, batch_size=4, max_new_tokens=4))
    first = evaluate_records(backend, rows[:3], tmp_path / "run", base_dir=base)
    evaluate_records(backend, rows[:3], tmp_path / "run", base_dir=base)
    assert backend.requests == 3 and first["n"] == 3
    # the checkpoint is retrained in place (same path, new weights): its old samples must not be reused
    weights = next(ckpt.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    retrained = Counting(HFBackend(ckpt, max_new_tokens=4))
    evaluate_records(retrained, rows[:3], tmp_path / "run", base_dir=base)
    assert retrained.requests == 3 and (tmp_path / "run" / "samples.jsonl.stale").exists()


def test_cli_suite_file_overrides_and_merge(records, tmp_path, monkeypatch):
    rows, base = records
    write_jsonl(rows, base / "r.jsonl")
    suite = tmp_path / "mine.yaml"
    suite.write_text(f"suite: mine\nrecords: {base / 'r.jsonl'}\nmax_new_tokens: 8\n")
    import medmo.eval.runner as runner

    monkeypatch.setattr(runner, "_backend", lambda cfg: Scripted(ANSWERS))
    for i in range(2):
        assert main(["eval", "--suite", str(suite), "--model", "m", "--shard", f"{i}/2", "--set", "limit=5",
                     "--out", str(tmp_path / "run"), "--no-plots"]) == 0
    assert main(["eval", "merge", str(tmp_path / "run" / "shard-0-of-2"), str(tmp_path / "run" / "shard-1-of-2"),
                 "--out", str(tmp_path / "merged"), "--no-plots"]) == 0
    res = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert res["suite"] == "mine" and res["benchmarks"]["r"]["n"] == 5  # limit applies before sharding
    assert "max_new_tokens: 8" in (tmp_path / "run" / "shard-0-of-2" / "config.yaml").read_text()


def test_missing_benchmark_data_fails_fast_or_is_listed_as_skipped(records, tmp_path, monkeypatch):
    rows, base = records
    write_jsonl(rows, base / "r.jsonl")
    import medmo.eval.runner as runner

    monkeypatch.setattr(runner, "_backend", lambda cfg: pytest.fail("no model may load before data is found"))
    cfg = dict(model="m", records=str(base / "r.jsonl"), benchmarks=["mimic_cxr"], data=str(tmp_path / "nowhere"),
               out=str(tmp_path / "run"), plots=False)
    with pytest.raises(FileNotFoundError):
        run(EvalConfig(**cfg))
    monkeypatch.setattr(runner, "_backend", lambda cfg: Scripted(ANSWERS))
    out = run(EvalConfig(**cfg, skip_missing=True))
    res = json.loads((out / "results.json").read_text())
    assert list(res["skipped"]) == ["mimic_cxr"] and res["benchmarks"]["r"]["n"] == 7
    assert "## Skipped (data not found)" in (out / "results.md").read_text()


def test_report_records_are_scored_with_report_metrics(tmp_path):
    img = _img(tmp_path / "cxr.png")
    ref = "Findings: The lungs are clear. Impression: No acute cardiopulmonary abnormality."
    rows = [{"id": f"r{i}", "source": "t", "split": "test", "task": "report", "images": [img],
             "messages": [{"role": "user", "content": f"<image>Write the report for study {i}."}],
             "answer": {"findings": "The lungs are clear.", "impression": "No acute cardiopulmonary abnormality."}}
            for i in range(2)]
    answers = {"Write the report for study 0.": ref, "Write the report for study 1.": "Heart size is normal."}
    res = evaluate_records(Scripted(answers), rows, tmp_path / "run", base_dir=tmp_path)
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert samples[0]["rouge_l"] == pytest.approx(1.0) and samples[1]["rouge_l"] < 0.5
    assert res["n"] == 2 and 0.5 < res["rouge_l"] < 0.8 and "cider_d" in res and "bleu4" in res


class Cutting:
    """A backend reporting why each answer ended: prompts with "long" are cut at the budget."""

    def __init__(self):
        self.budgets = []

    def generations(self, requests):
        from medmo.eval.backends import Generation

        self.budgets += [r.max_new_tokens for r in requests]
        return [Generation("yes", finish_reason="length" if "long" in r.messages[-1]["content"] else "stop",
                           tokens=r.max_new_tokens if "long" in r.messages[-1]["content"] else 2) for r in requests]


def test_cut_answers_are_counted_and_flagged(tmp_path):
    img = _img(tmp_path / "a.png")
    rows = [_vqa(0, img), {**_vqa(1, img), "messages": [{"role": "user", "content": "<image>A long question?"}]}]
    res = evaluate_records(Cutting(), rows, tmp_path / "run", base_dir=tmp_path)
    assert res["cut"] == 1 and res["failures"] == {"cut_at_max_new_tokens": 1}
    assert res["accuracy"] == 1.0  # a cut answer is still scored as written
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert sorted(s["finish_reason"] for s in samples) == ["length", "stop"]
    assert "## Answers cut at the token budget" in (tmp_path / "run" / "results.md").read_text()


def test_tokens_equal_to_the_budget_count_as_cut_when_no_reason_is_given():
    from medmo.eval.backends import Generation
    from medmo.eval.runner import is_cut

    assert is_cut(Generation("x", tokens=64), 64) and not is_cut(Generation("x", tokens=63), 64)
    assert not is_cut(Generation("x", finish_reason="stop", tokens=64), 64)  # the backend knows better
    assert not is_cut(Generation("x"), 64)  # nothing known


def test_benchmarks_get_their_own_generation_budget(shared_data, tmp_path, monkeypatch):
    import medmo.eval.runner as runner

    backend = Cutting()
    monkeypatch.setattr(runner, "_backend", lambda cfg: backend)
    out = run(EvalConfig(model="m", benchmarks=["vqa_rad", "medqa"], data=str(shared_data), limit=2,
                         out=str(tmp_path / "run"), plots=False))
    assert backend.budgets == [4096, 4096, 8192, 8192]  # VQA 4096, text QA 8192 (see medmo.eval.units)
    res = json.loads((out / "results.json").read_text())
    assert res["max_new_tokens"] == "per benchmark" and res["protocol"] == "default"
    assert res["benchmarks"]["medqa"]["protocol"]["max_new_tokens"] == 8192
    backend.budgets.clear()
    run(EvalConfig(model="m", benchmarks=["vqa_rad"], data=str(shared_data), limit=2, max_new_tokens=32,
                   out=str(tmp_path / "run2"), plots=False))
    assert backend.budgets == [32, 32]  # the user's budget wins
    backend.budgets.clear()
    judge = {"model": "j", "base_url": "http://127.0.0.1:9/v1", "retries": 0}  # nothing listens: counted, not fatal
    run(EvalConfig(model="m", benchmarks=["vqa_rad"], data=str(shared_data), limit=2, protocol="paper", judge=judge,
                   out=str(tmp_path / "run3"), plots=False))
    assert backend.budgets == [8192, 8192]  # the paper protocol: MedEvalKit's budget everywhere


def test_every_run_records_its_protocol(records, tmp_path):
    rows, base = records
    evaluate_records(Scripted(ANSWERS), rows, tmp_path / "run", base_dir=base)
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    proto = res["benchmarks"]["records"]["protocol"]
    assert proto["mode"] == "strict" and proto["judge_model"] is None and proto["prompt_version"]
    assert set(proto) >= {"protocol", "mode", "judge_model", "prompt_version", "box_format", "max_new_tokens", "set"}
    md = (tmp_path / "run" / "results.md").read_text()
    assert "protocol: `default`" in md and "judge_model: none" in md


def test_paper_protocol_needs_a_judge_and_scores_with_medevalkit_rules():
    with pytest.raises(ValueError, match="--judge-model"):
        EvalConfig(model="m", benchmarks=["vqa_rad"], protocol="paper")
    cfg = EvalConfig(model="m", benchmarks=["vqa_rad"], protocol="paper", judge={"model": "j", "base_url": "u"})
    assert cfg.mode == "medevalkit"
    assert EvalConfig(model="m", benchmarks=["vqa_rad"]).mode == "strict"
    with pytest.raises(ValueError, match="drop --mode"):  # a contradiction is an error, not silently resolved
        EvalConfig(model="m", benchmarks=["vqa_rad"], protocol="paper", mode="strict", judge={"model": "j"})
    with pytest.raises(ValueError, match="protocol must be"):
        EvalConfig(model="m", benchmarks=["vqa_rad"], protocol="papers")
    rc = main(["eval", "--model", "m", "--benchmark", "vqa_rad", "--protocol", "paper", "--out", "/nonexistent/x"])
    assert rc == 2  # a clear error before anything loads


def test_paper_protocol_loads_each_benchmark_with_its_paper_options(monkeypatch):
    import medmo.eval.benchmarks as benchmarks
    from dataclasses import replace

    from medmo.eval.units import benchmark_unit

    seen = []
    real = benchmarks.get_benchmark("medqa")
    fake = replace(real, paper_options={"layout": "mmmu"}, load=lambda path, **kw: seen.append(kw) or [])
    monkeypatch.setattr(benchmarks, "get_benchmark", lambda name: fake)
    default = benchmark_unit("medqa", None, "strict", None)
    paper = benchmark_unit("medqa", None, "medevalkit", None, protocol="paper")
    assert seen == [{}, {"layout": "mmmu"}]
    assert paper.paper_set is None and "layout=mmmu" in default.paper_set


@pytest.mark.slow  # opens all 451 VQA-RAD images (~20 s on 2 cores)
def test_paper_protocol_run_is_compared_and_a_partial_one_is_labelled(shared_data, tmp_path, monkeypatch):
    """End to end: --protocol paper on all of VQA-RAD with a judge compares with the paper; --limit does not."""
    import medmo.eval.runner as runner
    from medmo.eval.benchmarks import get_benchmark

    answers = {r.messages[0]["content"].replace("<image>", ""): r.answer["text"]
               for r in get_benchmark("vqa_rad").load(shared_data / "vqa_rad")}
    monkeypatch.setattr(runner, "_backend", lambda cfg: Scripted(answers))
    with FakeOpenAI(lambda body: "Yes.") as fake:
        judge = {"model": "j", "base_url": fake.base_url}
        full = run(EvalConfig(model="m", benchmarks=["vqa_rad"], data=str(shared_data), protocol="paper",
                              judge=judge, out=str(tmp_path / "full"), plots=False))
        part = run(EvalConfig(model="m", benchmarks=["vqa_rad"], data=str(shared_data), protocol="paper",
                              judge=judge, limit=8, out=str(tmp_path / "part"), plots=False))
    rad = json.loads((full / "results.json").read_text())["benchmarks"]["vqa_rad"]
    assert rad["coverage"]["line"] == "complete: 451 of 451" and rad["protocol"]["mode"] == "medevalkit"
    assert rad["vs_paper"] == "comparable"
    assert "| vqa_rad | accuracy |" in (full / "results.md").read_text()
    rad = json.loads((part / "results.json").read_text())["benchmarks"]["vqa_rad"]
    assert rad["vs_paper"] == "not comparable: partial: 8 of 451"
    assert "| not comparable: partial: 8 of 451 |" in (part / "results.md").read_text()


def test_resume_asks_the_judge_again_only_where_it_fell_back(tmp_path):
    img = _img(tmp_path / "a.png")
    rows = [{"id": f"o{i}", "source": "t", "split": "test", "task": "vqa", "images": [img],
             "messages": [{"role": "user", "content": f"<image>What organ {i}?"}],
             "answer": {"text": "liver", "closed": False}} for i in range(2)]
    answers = {"What organ 0?": "the hepatic organ", "What organ 1?": "hepatic tissue"}
    down = {"on": True}

    def reply(body):
        if down["on"] and "organ 1" in user_text(body):
            return {"content": "", "finish_reason": "length"}  # undecided, even after the retry
        return "yes"

    with FakeOpenAI(reply) as fake:
        judge = JudgeConfig(model="j", base_url=fake.base_url)
        first = evaluate_records(Scripted(answers), rows, tmp_path / "run", base_dir=tmp_path, judge=judge)
        assert first["judge"]["fell_back"] == {"judge_cut": 1} and first["accuracy"] == 0.5
        down["on"] = False
        backend = Counting(Scripted(answers))
        again = evaluate_records(backend, rows, tmp_path / "run", base_dir=tmp_path, judge=judge)
    assert backend.requests == 0  # nothing regenerated
    assert again["judge"]["judged"] == 2 and again["accuracy"] == 1.0 and "judge_cut" not in again["failures"]
    assert [user_text(b).count("organ 1") for b in fake.bodies].count(1) == 3  # two tries, then one on resume
