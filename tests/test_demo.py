"""The demo end to end at reduced size: the tiny model must learn (slow: minutes of CPU)."""
import json

import pytest

from medmo.demo import DemoConfig, run


@pytest.mark.slow
def test_demo_learns_to_localize(tmp_path):
    out = run(DemoConfig(out=str(tmp_path / "demo"), minutes=7, n_train=2000, n_eval=64))
    results = json.loads((out / "results.json").read_text())
    rows = {r["stage"]: r for r in results["stages"]}
    assert list(rows) == ["untrained", "stage1_sft", "stage2_sft", "stage3_sft", "stage4_grpo"]
    untrained, supervised = rows["untrained"]["mean_iou"], rows["stage3_sft"]["mean_iou"]
    assert supervised > untrained + 0.2, results["stages"]  # measured 0.49 vs 0.00 (2 threads)
    assert rows["stage4_grpo"]["mean_iou"] > untrained + 0.2
    for name in ("results.md", "iou_by_stage.png", "predictions.png", "stage4_grpo/reward.png", "stage1_sft/loss.png"):
        assert (out / name).exists(), name
