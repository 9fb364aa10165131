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


def test_eval_list_prints_every_benchmark_with_its_card(capsys):
    from medmo.cli import main

    assert main(["eval", "--list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert set(benchmark_names()) <= set(rows)
    assert rows["slake"][1:4] == ["vqa", "2094", "accuracy"] and rows["vqa_rad"][1:3] == ["vqa", "451"]
    assert rows["iu_xray"][2] == "296" and rows["mmlu_med"][2] == "1871?"  # '?': not every subject checked here
    assert rows["iu_xray_r2gen"][3] == "rouge_l" and rows["nih_chestxray14"][3] == "mean_iou"


# (benchmark, loaded items kept, coverage line): real files, cut or whole
COVERAGE_CASES = [
    ("slake", None, "complete: 2094 of 2094"),
    ("slake", lambda r: r.meta["lang"] == "en", "partial: 1061 of 2094 (missing langs: zh)"),
    ("slake_en", None, "complete: 1061 of 1061"),
    ("vqa_rad", None, "complete: 451 of 451"),
    ("pubmedqa", None, "complete: 500 of 500"),
    ("mmlu_med", None,  # the MedAgents file has 6 of MedEvalKit's 9 subjects
     "partial: 1089 of 1871 (missing subjects: nutrition, virology, high_school_biology)"),
    ("medxpertqa_text", None, "partial: 244 of 2450"),  # the shared sample
    ("medqa", lambda r: int(r.id.rsplit("/", 1)[-1]) < 100, "partial: 100 of 1273"),
]


@pytest.mark.parametrize("name,kept,line", COVERAGE_CASES)
def test_coverage_of_real_files(data_root, name, kept, line):
    from medmo.eval.benchmarks import coverage

    records = [r for r in get_benchmark(name).load(bench_data(data_root, name)) if kept is None or kept(r)]
    cov = coverage(name, records)
    assert cov.line == line and cov.complete == line.startswith("complete")
    assert cov.to_dict()["evaluated"] == len(records) and cov.to_dict()["expected"] == get_benchmark(name).size


def test_coverage_flags_more_items_and_unconfirmed_populations():
    from medmo.eval.benchmarks import coverage

    def sample(i, **meta):
        return {"id": str(i), "meta": meta}

    cov = coverage("pubmedqa", [sample(i, not_comparable="ids not confirmed") for i in range(1000)])
    assert not cov.complete and cov.line == ("partial: 1000 of 500 (ids not confirmed; "
                                             "500 more items than the published set)")
    assert not coverage("pubmedqa", [sample(i, not_comparable="x") for i in range(500)]).complete
    unchecked = coverage("bacteria", [sample(0)])
    assert not unchecked.complete and unchecked.line.startswith("unchecked: 1 items")


def test_every_benchmark_declares_its_card():
    for name in benchmark_names():
        b = get_benchmark(name)
        assert b.size_checked, f"{name}: say how its size was checked, or why not"
        assert b.size is not None or b.size_checked.startswith("unverified"), name
        for key, parts in b.subsets.items():  # declared parts add up (checked at registration too)
            assert sum(parts.values()) == b.size, (name, key)
    with pytest.raises(ValueError, match="add up to 3, not its size 4"):
        from medmo.eval.benchmarks import Benchmark

        Benchmark(name="x", family="vqa", load=list, score=dict, aggregate=dict, size=4, subsets={"k": {"a": 1, "b": 2}})


def test_mmmu_med_paper_layout_is_an_option_of_load(data_root):
    bench = get_benchmark("mmmu_med")
    assert bench.paper_options == {"layout": "mmmu"}
    generic = bench.load(bench_data(data_root, "mmmu_med"))
    paper = bench.load(bench_data(data_root, "mmmu_med"), **bench.paper_options)
    assert [r.id for r in paper] == [r.id for r in generic]
    assert all(len(r.images) <= 1 and "\n(A) " in r.prompt for r in paper if r.task == "mcq")
    assert not any("\n(A) " in r.prompt for r in generic)
    for r in paper:  # the reference still scores correct in both modes
        for mode in ("strict", "medevalkit"):
            assert bench.score(r.to_dict(), r.answer.get("letter") or r.answer["text"], mode)["correct"]


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
    size = get_benchmark(name).size  # two items of a published set: partial, whatever the score
    cov = res["coverage"]
    assert cov["evaluated"] == 2 and cov["expected"] == size and cov["complete"] is False
    assert cov["line"].startswith(f"partial: 2 of {size}" if size else "unchecked: 2 items")


def test_tiny_model_results_md_says_partial(tiny_run):
    _, out = tiny_run
    md = (out / "results.md").read_text()
    assert "| slake | partial: 2 of 2094 (missing langs: zh) |" in md
    assert "| vqa_rad | partial: 2 of 451 |" in md


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
