"""Report benchmarks: each loads its release-format fixture (iu_xray: MedEvalKit's real
test.json from ../shared/data) and scores hand-made responses in both modes; aggregates;
empty responses; model metrics say what they need; coverage of the paper's IU-Xray set."""
from __future__ import annotations

from pathlib import Path

import pytest

from medmo.eval import metrics
from medmo.eval.benchmarks import benchmark_names, coverage, get_benchmark
from medmo.eval.benchmarks._report import clean_response

FIX = Path(__file__).parent / "fixtures"
MEDEVALKIT_IU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "iu_xray_medevalkit"
DATA = {"mimic_cxr": FIX / "mimic_cxr", "chexpert_plus": FIX / "chexpert_plus", "iu_xray": MEDEVALKIT_IU,
        "iu_xray_r2gen": FIX / "iu_xray", "medtrinity": FIX / "medtrinity"}
N_TEST = {"mimic_cxr": 2, "chexpert_plus": 2, "iu_xray": 296, "iu_xray_r2gen": 2, "medtrinity": 2}


@pytest.fixture(autouse=True)
def _no_models(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDMO_REPORT_MODELS", raising=False)
    monkeypatch.setenv("MEDMO_CACHE", str(tmp_path / "cache"))  # MedTrinity's embedded images go here


def test_report_family_is_registered():
    assert benchmark_names("report") == sorted(DATA)


@pytest.mark.parametrize("name", sorted(DATA))
def test_benchmark_loads_fixture_and_scores(name):
    bench = get_benchmark(name)
    records = bench.load(DATA[name])
    assert len(records) == N_TEST[name] and all(r.task == "report" for r in records)
    samples = []
    for i, r in enumerate(records[:2]):
        sample = r.to_dict()
        # a perfect answer for the first record, an empty one for the second
        response = r.answer["text"] if i == 0 else ""
        scored = bench.score(sample, response, "strict")
        samples.append({**sample, "response": response, **scored})
    assert samples[0]["rouge_l"] == pytest.approx(1.0) and samples[0]["bleu4"] == pytest.approx(1.0)
    assert samples[1]["empty"] and samples[1]["score"] == 0.0 and samples[1]["bleu1"] == 0.0
    out = bench.aggregate(samples)
    assert out["n"] == len(samples) and out["empty_responses"] == 1
    assert out["rouge_l"] == pytest.approx(0.5)
    assert set(metrics.METRICS) <= set(out)
    assert ("rule_chexpert_f1_micro14" in out) == (name != "medtrinity")
    assert any("ratescore skipped" in n for n in out["notes"])
    assert any("sembscore skipped" in n for n in out["notes"]) == (name != "medtrinity")


RESPONSES = [
    # (raw response, what scoring reads)
    ("<think>the lungs look clear</think>Findings: Lungs clear. Impression: Normal.", "Findings: Lungs clear. Impression: Normal."),  # reasoning dropped
    ("<answer>Findings: A.\nImpression: B.</answer> trailing", "Findings: A. Impression: B."),  # <answer> content, whitespace folded
    (None, ""),  # no response at all
]


@pytest.mark.parametrize("raw,expected", RESPONSES)
def test_clean_response(raw, expected):
    assert clean_response(raw) == expected


def test_modes_change_the_reference():
    bench = get_benchmark("mimic_cxr")
    rec = bench.load(DATA["mimic_cxr"])[0].to_dict()
    strict = bench.score(rec, rec["answer"]["text"], "strict")
    mek = bench.score(rec, rec["answer"]["text"], "medevalkit")
    assert strict["reference"] == rec["answer"]["text"]
    assert mek["reference"] == f"Findings: {rec['answer']['findings']} Impression: {rec['answer']['impression']}."
    assert strict["rouge_l"] == 1.0 and mek["rouge_l"] < 1.0  # MedEvalKit's golden has an extra "."
    with pytest.raises(ValueError, match="unknown scoring mode"):
        bench.score(rec, "x", "lenient")


def test_chexpert_labels_and_f1_in_results():
    bench = get_benchmark("chexpert_plus")
    recs = [r.to_dict() for r in bench.load(DATA["chexpert_plus"])]
    responses = ["Findings: Stable mild cardiomegaly. Impression: No acute change.", "Findings: Cardiomegaly. Impression: Large effusion."]
    samples = [{**r, "response": t, **bench.score(r, t, "strict")} for r, t in zip(recs, responses)]
    assert samples[0]["labels"]["Cardiomegaly"] == 1
    out = bench.aggregate(samples)
    # refs: {Cardiomegaly, Support Devices}, {No Finding}; hyps: {Cardiomegaly, (No Finding: no)}, {Cardiomegaly, Effusion}
    assert 0.0 < out["rule_chexpert_f1_micro14"] < 1.0


def test_judge_payload_and_judge_accuracy():
    bench = get_benchmark("iu_xray")
    rec = bench.load(DATA["iu_xray"])[0].to_dict()
    scored = bench.score(rec, "Findings: normal.", "strict")
    assert scored["judge"]["reference"] == rec["answer"]["text"] and scored["judge"]["response"] == "Findings: normal."
    samples = [{**rec, **scored, "correct": True}, {**rec, **scored, "correct": False}]
    assert bench.aggregate(samples)["judge_accuracy"] == 0.5


def test_missing_data_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="test.json"):
        get_benchmark("iu_xray").load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="annotation.json"):
        get_benchmark("iu_xray_r2gen").load(tmp_path / "nowhere")


def test_iu_xray_is_medevalkits_296_studies_and_r2gen_keeps_its_name(shared_data):
    records = get_benchmark("iu_xray").load(shared_data / "iu_xray_medevalkit")
    assert len({r.id for r in records}) == 296
    assert all(r.answer["findings"] and r.answer["impression"] for r in records)  # both sections, unlike R2Gen's
    assert all(2 <= len(r.images) <= 4 for r in records)
    assert coverage("iu_xray", records).complete and coverage("iu_xray", records).line == "complete: 296 of 296"
    assert coverage("iu_xray", records[:100]).line == "partial: 100 of 296"
    # each benchmark takes only its own population: R2Gen's file is not MedMO's IU-Xray, and back
    with pytest.raises(ValueError, match="no reports .* found"):
        get_benchmark("iu_xray").load(FIX / "iu_xray")
    with pytest.raises(ValueError, match="no reports .* found"):
        get_benchmark("iu_xray_r2gen").load(shared_data / "iu_xray_medevalkit")


def test_tiny_model_runs_every_report_benchmark(tiny_dir, tmp_path):
    """Two items of each report benchmark through medmo.eval.runner with the tiny Qwen3-VL."""
    import json

    from medmo.eval.runner import EvalConfig, run

    from PIL import Image

    root = tmp_path / "data"  # the fixtures plus MedEvalKit's IU-Xray with stand-in images for its first studies
    root.mkdir()
    for child in FIX.iterdir():
        (root / child.name).symlink_to(child)
    (root / "iu_xray_medevalkit" / "images").mkdir(parents=True)
    (root / "iu_xray_medevalkit" / "test.json").symlink_to(MEDEVALKIT_IU / "test.json")
    for study in json.loads((MEDEVALKIT_IU / "test.json").read_text())[:2]:
        for name in study["image"]:
            Image.new("L", (64, 64), 128).save(root / "iu_xray_medevalkit" / "images" / name)
    out = run(EvalConfig(model=str(tiny_dir), benchmarks=sorted(DATA), data=str(root), limit=2, max_new_tokens=4,
                         batch_size=8, out=str(tmp_path / "run"), plots=False))
    results = json.loads((out / "results.json").read_text())["benchmarks"]
    for name in DATA:
        res = results[name]
        assert res["family"] == "report" and res["n"] == 2 and res["n_failed"] == 0, (name, res)
        assert all(0.0 <= res[k] <= 1.0 for k in ("bleu1", "bleu4", "rouge_l")) and res["cider_d"] >= 0.0
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * len(DATA) and all("rouge_l" in s and "response" in s for s in lines)
