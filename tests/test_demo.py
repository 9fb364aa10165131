"""The demo end to end as `medmo demo` runs it: the tiny model must learn (slow: minutes of CPU)."""
import json
from pathlib import Path

import pytest

from medmo.demo import DemoConfig, run


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 5 minutes on a quiet 2-core machine; 10 on the slower ones, more when loaded
def test_demo_learns_to_localize(tmp_path):
    """The default demo (the README's promise): thresholds are learning checks with margin, below
    the numbers measured on six random starts in bench/RESULTS.md (one-cell IoU 0.77-0.85,
    set IoU 0.63-0.70, f1@0.5 0.72-0.81, VQA 0.83-0.95), as another CPU's arithmetic may differ."""
    out = run(DemoConfig(out=str(tmp_path / "demo")))
    results = json.loads((out / "results.json").read_text())
    rows = {r["stage"]: r for r in results["stages"]}
    assert list(rows) == ["untrained", "stage1_sft", "stage2_sft", "stage3_sft", "stage4_grpo"]
    start, final = rows["untrained"], rows["stage4_grpo"]
    assert rows["stage1_sft"]["mean_iou"] > start["mean_iou"] + 0.4, results["stages"]  # the model reads positions
    assert final["mean_iou"] > start["mean_iou"] + 0.4, results["stages"]
    for r in results["stages"]:
        assert all(isinstance(r[k], (int, float)) for k in ("multi_iou", "multi_f1@0.5", "multi_count_mae")), r
    assert final["mean_iou"] >= 0.6 and final["multi_iou"] > 0.5 and final["multi_f1@0.5"] > 0.6, results["stages"]
    assert final["multi_count_mae"] < 0.5 < start["multi_count_mae"], results["stages"]  # counts: 1.9 -> ~0.15
    assert final["accuracy"] > 0.6, results["stages"]  # count / presence questions, from 0
    seconds = results["data_seconds"] + sum(r["train_seconds"] + r["eval_seconds"] for r in results["stages"])
    assert seconds <= results["total_seconds"] + 0.5, results  # every phase timed, none twice
    for name in ("results.md", "iou_by_stage.png", "predictions.png", "stage4_grpo/reward.png", "stage1_sft/loss.png"):
        assert (out / name).exists(), name


def test_stage_plan_gives_grpo_grounding_and_questions(tmp_path):
    """Stage 4 trains on single-cell grounding and count/presence questions (two record files);
    every other stage on its own file; steps scale with the minutes."""
    from medmo.data.schema import read_records
    from medmo.demo import make_data, stage_plan

    cfg = DemoConfig(out=str(tmp_path), minutes=5, n_train=96, n_eval=8)  # stage 4: 12 images
    data = make_data(cfg, tmp_path / "data")
    stages = stage_plan(cfg, data, tmp_path, tmp_path / "tiny")
    files = {Path(c.output_dir).name: [Path(p).name for p in c.data] for _, c in stages}
    assert files == {"stage1_sft": ["stage1.jsonl"], "stage2_sft": ["stage2.jsonl"], "stage3_sft": ["stage3.jsonl"],
                     "stage4_grpo": ["stage4.jsonl", "stage4_vqa.jsonl"]}
    tasks = {r.task for p in stages[3][1].data for r in read_records(p)}
    assert tasks == {"grounding", "vqa"} and set(stages[3][1].rewards) >= {"giou", "accuracy"}
    # count-aware curriculum: one cell in stage 1, 1..max_cells from stage 2 on (GRPO included)
    cells = {i: {r.meta["n_cells"] for r in read_records(data[f"stage{i}"]) if r.task == "grounding"}
             for i in (1, 2, 3, 4)}
    assert cells[1] == {1} and all(cells[i] == {1, 2, 3} for i in (2, 3, 4)), cells
    assert stages[3][1].max_completion_length >= 64  # three boxes fit in a rollout
    import yaml

    from medmo.config import shipped_recipes

    full = yaml.safe_load((shipped_recipes() / "tiny" / "stage1_sft.yaml").read_text())["max_steps"]
    assert stages[0][1].max_steps == round(full * 5 / 10)  # the recipe's steps at 5 of 10 minutes


def test_data_is_the_same_on_one_process_or_two(tmp_path):
    """make_data draws each set on a worker process (the demo gives it one per thread): the
    records and image bytes must equal a one-process run's."""
    from medmo.demo import make_data

    def files(workers: int) -> dict[str, bytes]:
        root = tmp_path / str(workers)
        make_data(DemoConfig(out=str(root), n_train=48, n_eval=8), root, workers=workers)
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    one, two = files(1), files(2)
    assert len(one) > 8 * 2 and one == two  # 8 record files and their images
