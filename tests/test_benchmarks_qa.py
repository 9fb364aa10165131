"""The VQA and text-QA benchmarks: each loads its data (real files or release-format
fixtures), scores hand-made responses in both modes, and runs the tiny model on a few
items through medmo.eval.runner; vqa_rad runs end to end on the real VQA-RAD images."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

import qa_fixtures
from medmo.eval.benchmarks import benchmark_names, get_benchmark
from medmo.model.prompts import PROMPT_VERSION

VQA = ("mmmu_med", "vqa_rad", "slake", "slake_en", "slake_zh", "path_vqa", "pmc_vqa", "omnimedvqa", "medxpertqa_mm")
TEXTQA = ("mmlu_med", "pubmedqa", "medmcqa", "medqa", "medbullets_op4", "medbullets_op5", "medxpertqa_text",
          "supergpqa_med")
MINE = VQA + TEXTQA


@pytest.fixture(scope="module")
def data_root(shared_data, tmp_path_factory) -> Path:
    """One folder per benchmark, as `medmo eval --data ROOT` expects: real files linked in,
    release-format fixtures for the datasets without a real copy, and tiny stand-in images
    for SLAKE and MedXpertQA-MM (their real images are not in ../shared/data)."""
    root = tmp_path_factory.mktemp("qa_data")
    for name in ("vqa_rad", "pubmedqa", "medqa", "medmcqa", "mmlu"):
        (root / name).symlink_to(shared_data / name)
    slake = root / "slake"
    slake.mkdir()
    (slake / "test.json").symlink_to(shared_data / "slake" / "test.json")
    for item in json.loads((shared_data / "slake" / "test.json").read_text()):
        img = slake / "imgs" / item["img_name"]
        if not img.exists():
            img.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 64), (90, 90, 90)).save(img)
    mx = root / "medxpertqa"
    mx.mkdir()
    for f in ("medxpertqa_mm_input.jsonl", "medxpertqa_sampled_text_input.jsonl"):
        (mx / f).symlink_to(shared_data / "medxpertqa" / f)
    (mx / "images").mkdir()
    for line in (shared_data / "medxpertqa" / "medxpertqa_mm_input.jsonl").read_text().splitlines()[:5]:
        for img in json.loads(line)["images"]:
            Image.new("RGB", (64, 64), (30, 30, 30)).save(mx / "images" / img["image_path"])
    qa_fixtures.path_vqa(root / "path_vqa")
    qa_fixtures.pmc_vqa(root / "pmc_vqa")
    qa_fixtures.omnimedvqa(root / "omnimedvqa")
    qa_fixtures.mmmu(root / "mmmu")
    qa_fixtures.medbullets(root / "medbullets")
    qa_fixtures.supergpqa(root / "supergpqa")
    return root


def bench_data(root: Path, name: str) -> Path:
    return root / get_benchmark(name).default_data


def test_registered_with_family_and_prompt_version():
    assert set(MINE) <= set(benchmark_names())
    assert set(VQA) <= set(benchmark_names("vqa")) and set(TEXTQA) <= set(benchmark_names("textqa"))
    for name in MINE:
        assert get_benchmark(name).version.endswith(f".p{PROMPT_VERSION}")
    with pytest.raises(ValueError, match="Did you mean 'vqa_rad'"):
        get_benchmark("vqarad")


def test_load_counts_on_real_files(data_root):
    # the sources' own counts are checked in test_sources_qa; here the benchmarks' selections
    counts = {"vqa_rad": 451, "slake": 2094, "slake_en": 1061, "slake_zh": 1033, "medqa": 1273}
    for name, n in counts.items():
        assert len(get_benchmark(name).load(bench_data(data_root, name))) == n, name


def test_medqa_benchmark_refuses_the_five_option_file(shared_data):
    with pytest.raises(ValueError, match="4-option"):
        get_benchmark("medqa").load(shared_data / "medqa" / "5options")


def _right(sample: dict) -> str:
    return sample["answer"]["letter"] if sample["task"] == "mcq" else sample["answer"]["text"]


def _wrong(sample: dict) -> str:
    if sample["task"] == "mcq":
        return next(k for k in sample["answer"]["choices"] if k != sample["answer"]["letter"])
    return "no" if sample["answer"]["text"].lower() == "yes" else "zzz"


@pytest.mark.parametrize("mode", ["strict", "medevalkit"])
@pytest.mark.parametrize("name", MINE)
def test_hand_made_responses_score_and_aggregate(data_root, name, mode):
    bench = get_benchmark(name)
    records = [r.to_dict() for r in bench.load(bench_data(data_root, name))[:3]]
    right = [{**r, **bench.score(r, _right(r), mode)} for r in records]
    wrong = [{**r, **bench.score(r, _wrong(r), mode)} for r in records]
    assert all(s["correct"] for s in right), [s["parsed"] for s in right]
    assert not any(s["correct"] for s in wrong)
    agg = bench.aggregate(right + wrong)
    assert agg["n"] == 2 * len(records) and agg["accuracy"] == pytest.approx(0.5)
    n_vqa = sum(r["task"] == "vqa" for r in records)
    if n_vqa:  # closed/open split over the VQA questions (MMMU mixes in multiple choice)
        assert agg["n_closed"] + agg["n_open"] == 2 * n_vqa


@pytest.mark.parametrize("name", ["vqa_rad", "slake", "pubmedqa", "medqa", "medmcqa", "mmlu_med", "medxpertqa_text"])
def test_every_reference_answer_scores_correct_on_real_data(data_root, name):
    # the training target of each record (the reference, "B. text" for MCQ) must score
    # correct in both modes: no reference is lost to a parsing rule
    bench = get_benchmark(name)
    for r in (r.to_dict() for r in bench.load(bench_data(data_root, name))):
        for mode in ("strict", "medevalkit"):
            assert bench.score(r, r["messages"][-1]["content"], mode)["correct"], (r["id"], mode)


def test_vqa_rad_closed_open_breakdown_by_mode(data_root):
    bench = get_benchmark("vqa_rad")
    records = [r.to_dict() for r in bench.load(bench_data(data_root, "vqa_rad"))]
    strict = bench.aggregate([{**r, **bench.score(r, "no", "strict")} for r in records])
    mek = bench.aggregate([{**r, **bench.score(r, "no", "medevalkit")} for r in records])
    assert (strict["n_closed"], strict["n_open"]) == (272, 179)  # the dataset's answer_type
    assert (mek["n_closed"], mek["n_open"]) == (251, 200)  # MedEvalKit: closed = yes/no answer
    assert "by_question_type" in strict and "by_image_organ" in strict


@pytest.fixture(scope="module")
def tiny_run(tiny_dir, data_root, tmp_path_factory):
    from medmo.eval.runner import EvalConfig, run

    out = tmp_path_factory.mktemp("qa_eval") / "run"
    # few new tokens and a small image budget keep this CPU run short (the point is the path, not the score)
    cfg = EvalConfig(model=str(tiny_dir), benchmarks=list(MINE), data=str(data_root), limit=2, batch_size=8,
                     max_new_tokens=4, max_pixels=64 * 64, out=str(out), plots=False)
    return json.loads((run(cfg) / "results.json").read_text()), out


@pytest.mark.parametrize("name", MINE)
def test_tiny_model_run_scores_each_benchmark(tiny_run, name):
    results, _ = tiny_run
    res = results["benchmarks"][name]
    assert res["n"] == 2 and res["n_failed"] == 0, res.get("failures")
    assert 0.0 <= res["accuracy"] <= 1.0
    assert res["version"] == get_benchmark(name).version
    assert "parse_failures" in res


def test_tiny_model_samples_keep_prompt_response_and_verdict(tiny_run):
    _, out = tiny_run
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * len(MINE)
    for s in samples:
        assert isinstance(s["response"], str) and isinstance(s["correct"], bool) and "parsed" in s
        assert s["meta"]["prompt_version"] == PROMPT_VERSION


def test_vqa_rad_end_to_end_on_real_images(tiny_dir, shared_data, tmp_path):
    from medmo.eval.runner import EvalConfig, run

    cfg = EvalConfig(model=str(tiny_dir), benchmarks=["vqa_rad"], data=str(shared_data / "vqa_rad"), limit=8,
                     batch_size=8, max_new_tokens=6, out=str(tmp_path / "rad"), plots=False, mode="medevalkit")
    res = json.loads((run(cfg) / "results.json").read_text())["benchmarks"]["vqa_rad"]
    assert res["n"] == 8 and res["n_failed"] == 0
    assert res["n_closed"] + res["n_open"] == 8
    for key in ("accuracy", "closed_accuracy", "open_accuracy"):
        assert 0.0 <= res[key] <= 1.0
    shutil.rmtree(tmp_path / "rad")


@pytest.mark.slow
def test_vqa_rad_full_test_split(tiny_dir, shared_data, tmp_path):
    from medmo.eval.runner import EvalConfig, run

    cfg = EvalConfig(model=str(tiny_dir), benchmarks=["vqa_rad"], data=str(shared_data / "vqa_rad"), batch_size=16,
                     max_new_tokens=8, out=str(tmp_path / "rad"), plots=False)
    res = json.loads((run(cfg) / "results.json").read_text())["benchmarks"]["vqa_rad"]
    assert (res["n"], res["n_closed"], res["n_open"], res["n_failed"]) == (451, 272, 179, 0)
