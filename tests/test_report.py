"""results.md tables, the comparison with published numbers, plots, and the shipped suites."""
from pathlib import Path

import pytest
import yaml
from PIL import Image

from medmo.config import load_config
from medmo.eval.benchmarks import benchmark_names
from medmo.eval.report import markdown, paper_results, write_report
from medmo.eval.runner import RECIPES, EvalConfig

RESULTS = {
    "model": "runs/x", "backend": "hf", "mode": "strict", "judge_model": None,
    "benchmarks": {
        "vqa_rad": {"kind": "benchmark", "family": "vqa", "n": 451, "accuracy": 0.5, "closed_accuracy": 0.75,
                    "open_accuracy": 0.125, "parse_failures": 3, "n_failed": 1, "failures": {"missing_image": 1},
                    "by_image_organ": {"CHEST": {"n": 300, "accuracy": 0.6}, "HEAD": {"n": 151, "accuracy": 0.3}}},
        "medqa": {"kind": "benchmark", "family": "textqa", "n": 10, "accuracy": 0.9, "parse_failures": 0,
                  "n_failed": 0, "failures": {}},
        "bacteria": {"kind": "benchmark", "family": "grounding", "n": 5, "mean_iou": 0.4, "iou@0.3": 0.6,
                     "iou@0.5": 0.4, "iou@0.7": 0.2, "parse_failures": 1, "n_failed": 0, "failures": {}},
        "mine": {"kind": "records", "family": "mixed", "n": 2, "accuracy": 0.5, "n_failed": 0, "failures": {}},
    },
}


def test_tables_follow_the_paper_layout():
    md = markdown(RESULTS)
    assert "## Medical VQA" in md and "## Medical text QA" in md and "## Grounding" in md
    assert "| vqa_rad | 451 | 75.0 | 12.5 | 50.0 | 3 | 1 |" in md  # closed / open / all, percent
    assert "| bacteria | 5 | 40.0 | 60.0 | 40.0 | 20.0 | 1 | 0 |" in md
    assert md.index("## Medical VQA") < md.index("## Medical text QA") < md.index("## Grounding")
    assert "| vqa_rad | missing_image | 1 |" in md
    assert "<summary>vqa_rad by image_organ</summary>" in md and "| HEAD | 151 | 30.0 |" in md  # folded breakdown


def test_comparison_uses_published_numbers():
    md = markdown(RESULTS)
    assert "| vqa_rad | accuracy | 50.0 | 65.0 | -15.0 |" in md  # MedMO-8B-Next VQA-RAD all = 65.0
    assert "| medqa | accuracy | 90.0 | 83.8 | +6.2 |" in md
    assert "| bacteria | mean_iou | 40.0 | 56.1 | -16.1 |" in md
    assert "| mine | accuracy" not in md  # a private record set has nothing to compare with


def test_published_numbers_are_fractions_of_registered_benchmarks():
    paper = paper_results()
    registered = set(benchmark_names())
    assert set(paper) <= registered, set(paper) - registered
    assert all(0.0 <= v <= 1.0 for m in paper.values() for v in m.values())
    assert paper["vqa_rad"] == {"closed_accuracy": pytest.approx(0.804), "accuracy": pytest.approx(0.65)}


def test_plots_are_written(tmp_path):
    write_report(RESULTS, tmp_path, plots=True)
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["bars_grounding.png", "bars_textqa.png", "bars_vqa.png", "radar.png"]
    with Image.open(tmp_path / "radar.png") as im:
        assert im.width > 300 and im.height > 300
    assert (tmp_path / "results.md").read_text().startswith("# Evaluation of `runs/x`")


@pytest.mark.parametrize("suite", sorted(p.stem for p in RECIPES.glob("*.yaml")))
def test_suites_load_and_name_registered_benchmarks(suite):
    path = RECIPES / f"{suite}.yaml"
    cfg = load_config(EvalConfig, path, [], model="m")
    assert cfg.suite == suite and cfg.benchmarks
    missing = sorted(set(cfg.benchmarks) - set(benchmark_names()))  # the registry as it is now
    assert not missing, f"{path.name} lists unregistered benchmarks: {missing}"


def test_all_suite_is_the_union_of_the_others():
    suites = {p.stem: yaml.safe_load(p.read_text())["benchmarks"] for p in Path(RECIPES).glob("*.yaml")}
    others = [b for name, bs in suites.items() if name != "all" for b in bs]
    assert sorted(suites["all"]) == sorted(others)
