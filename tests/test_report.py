"""results.md tables, the comparison with published numbers (only where protocols match),
judge coverage and cut answers, plots, and the shipped suites."""
import copy
from pathlib import Path

import pytest
import yaml
from PIL import Image

from medmo.config import load_config
from medmo.eval.benchmarks import benchmark_names
from medmo.eval.report import markdown, paper_results, protocol_differences, write_report
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


PAPER = {"protocol": "paper", "mode": "medevalkit", "judge_model": "gpt-5-mini", "prompt_version": "1.p1",
         "box_format": None, "max_new_tokens": 4096, "set": "paper"}


def _paper_run():
    """Results that follow the paper's protocol on VQA-RAD (all 451 items, judge on all open ones) and MedQA."""
    res = copy.deepcopy(RESULTS)
    rad, medqa = res["benchmarks"]["vqa_rad"], res["benchmarks"]["medqa"]
    rad.update(protocol=dict(PAPER), judge={"open": 200, "judged": 200, "fell_back": {}, "coverage": 1.0,
                                           "complete": True}, coverage={"complete": True, "line": "complete: 451 of 451"})
    medqa.update(protocol=dict(PAPER), n=1273, coverage={"complete": True, "line": "complete: 1273 of 1273"})
    del res["benchmarks"]["bacteria"]
    return res


def _comparison(md):
    """{benchmark: row cells} of the comparison table."""
    part = md.split("## Compared with published")[1].split("\n\n")[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in part.splitlines()[2:]]
    return {r[0]: r for r in rows}


def test_comparison_with_the_paper_only_where_the_protocol_matches():
    md = markdown(_paper_run())
    table = _comparison(md)
    assert table["vqa_rad"] == ["vqa_rad", "accuracy", "50.0", "65.0", "-15.0", "comparable"]
    assert table["medqa"] == ["medqa", "accuracy", "90.0", "83.8", "+6.2", "comparable"]
    assert "| mine | accuracy" not in md  # a private record set has nothing to compare with


@pytest.mark.parametrize("change,label", [
    ({"protocol": {**PAPER, "mode": "strict", "judge_model": None}}, "not comparable: strict mode, no judge"),
    ({"judge": {"open": 200, "judged": 150, "fell_back": {"judge_empty": 50}, "coverage": 0.75, "complete": False}},
     "judge decided 150 of 200 open items"),
    ({"coverage": {"complete": False, "line": "partial: 8 of 451"}}, "partial: 8 of 451"),
    ({"protocol": {**PAPER, "set": "not the paper's layout (layout=mmmu under --protocol paper)"}},
     "not the paper's layout"),
    ({"cut": 12}, "12 answers cut at 4096 tokens (paper: 8192)"),
    ({"protocol": None}, "protocol not recorded"),  # results written before protocols were recorded
])
def test_a_differing_protocol_is_labelled_and_gets_no_difference(change, label):
    res = _paper_run()
    res["benchmarks"]["vqa_rad"].update(change)
    row = _comparison(markdown(res))["vqa_rad"]
    assert row[4] == "–" and row[5].startswith("not comparable: ") and label in row[5], row


def test_no_published_number_sits_unlabelled_beside_a_run_of_another_protocol():
    """Every comparison row with a published number says comparable exactly when nothing differs."""
    runs = [RESULTS, _paper_run()]
    for mode in ("strict", "medevalkit"):
        for judge_model in (None, "j"):
            r = _paper_run()
            r["benchmarks"]["vqa_rad"]["protocol"].update(mode=mode, judge_model=judge_model)
            runs.append(r)
    for res in runs:
        for name, row in _comparison(markdown(res)).items():
            if row[3] == "–":
                continue
            diffs = protocol_differences(name, res["benchmarks"][name])
            assert (row[5] == "comparable") == (not diffs), row
            assert row[5] == "comparable" or row[4] == "–", row


def test_judge_coverage_cut_answers_and_incomplete_runs_are_shown():
    res = _paper_run()
    res["benchmarks"]["vqa_rad"].update(judge={"open": 40, "judged": 30, "fell_back": {"judge_cut": 6,
                                        "judge_timeout": 4}, "coverage": 0.75, "complete": False}, cut=3)
    res["incomplete"] = {"vqa_rad": "judge decided 30 of 40 open items (75.0% < 95%)"}
    md = markdown(res)
    assert "**Incomplete run**: vqa_rad: judge decided 30 of 40" in md
    assert "| vqa_rad | 40 | 30 | judge_cut 6, judge_timeout 4 | 75.0 |" in md
    assert "| vqa_rad | 3 | 451 | 4096 |" in md
    assert "protocol: `default`" not in md and "judge_model: none" in md


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
