"""GRPO on the tiny model: one real TRL step with the registered rewards, and config checks."""
import json

import pytest

from medmo.config import load_config
from medmo.data.synthetic import write_cell_set
from medmo.model.prompts import REASONING
from medmo.train.grpo import GRPOConfig, grpo_dataset, plot_rewards, run
from medmo.train.rewards import build_rewards


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    return write_cell_set(tmp_path_factory.mktemp("cells"), "train", 4, n_vqa=2, image_size=64, max_cells=2)


def test_rows_carry_task_answer_and_image_size(cells, tmp_path):
    dataset, skipped = grpo_dataset([str(cells)], tmp_path / "dataset")
    rows = list(dataset)
    assert not skipped and len(rows) == 6
    ground, vqa = rows[0], rows[-1]
    assert ground["task"] == "grounding" and ground["image_size"] == [64, 64]
    # source and modality decide which factuality term a report gets
    assert (ground["source"], ground["modality"]) == ("synthetic_cells", "microscopy")
    assert json.loads(ground["answer"])["boxes"] and vqa["image_size"] is None
    # the prompt is the user turn only, image placeholder first, as the processor's chat format
    assert [m["role"] for m in ground["prompt"]] == ["user"]
    assert ground["prompt"][0]["content"][0] == {"type": "image"}
    assert [im.mode for im in ground["images"]] == ["RGB"]  # opened on access


def test_reasoning_asks_for_the_think_format_in_every_prompt(cells, tmp_path):
    plain, _ = grpo_dataset([str(cells)], tmp_path / "dataset")
    thinking, _ = grpo_dataset([str(cells)], tmp_path / "dataset", reasoning=True)  # same cached set
    before, after = plain[0]["prompt"], thinking[0]["prompt"]
    assert after[-1]["content"][:-1] == before[-1]["content"]  # the question is unchanged ...
    assert after[-1]["content"][-1] == {"type": "text", "text": "\n" + REASONING}  # ... the instruction follows it
    assert "<think>" not in str(before)


def test_reasoning_adds_the_think_format_term_and_threshold_is_checked(cells):
    assert "think_format" not in GRPOConfig(model="m", data=[str(cells)]).rewards  # off by default
    cfg = GRPOConfig(model="m", data=[str(cells)], reasoning=True)
    assert cfg.rewards == {"giou": 1.0, "format": 0.1, "think_format": 0.1}
    with pytest.raises(ValueError, match="reasoning: true"):
        GRPOConfig(model="m", data=[str(cells)], rewards={"giou": 1.0, "think_format": 0.1})
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="reward_iou_threshold"):
            GRPOConfig(model="m", data=[str(cells)], reward_iou_threshold=bad)


def test_trl_logs_each_term_by_its_name():
    from trl.trainer.utils import get_callable_name

    funcs, _ = build_rewards({"giou": 1.0, "label": 0.5, "accuracy": 1.0}, iou_threshold=0.7)
    assert [get_callable_name(f) for f in funcs] == ["giou_reward", "label_reward", "accuracy_reward"]


def test_reward_plot_has_rewards_box_counts_and_length(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [{"step": s, "reward": 0.1 * s, "rewards/giou_reward/mean": 0.1 * s, "boxes/predicted": 5.0 - s,
             "boxes/true": 1.0, "completions/mean_length": 30.0 + s} for s in range(1, 4)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import matplotlib.image

    three = matplotlib.image.imread(plot_rewards(log, {"giou": 1.0}, tmp_path / "reward.png")).shape[0]
    log.write_text("".join(json.dumps({"step": r["step"], "reward": r["reward"]}) + "\n" for r in rows))
    one = matplotlib.image.imread(plot_rewards(log, {"giou": 1.0}, tmp_path / "reward1.png")).shape[0]
    assert three == pytest.approx(3 * one, abs=3)  # rewards, box counts and length: three stacked panels
    assert plot_rewards(tmp_path / "missing.jsonl", {"giou": 1.0}, tmp_path / "none.png") is None


def test_beta_is_positive_by_default_and_terms_are_checked(cells, tmp_path):
    assert GRPOConfig(model="m", data=[str(cells)]).beta > 0
    with pytest.raises(ValueError, match="Did you mean 'format'"):
        GRPOConfig(model="m", data=[str(cells)], rewards={"giou": 1.0, "fromat": 0.1})
    with pytest.raises(ValueError, match="num_generations"):
        GRPOConfig(model="m", data=[str(cells)], num_generations=1)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"trainer: grpo\nmodel: m\ndata: [{cells}]\nrewards: {{giou: 1.0, format: 0.1}}\n")
    cfg = load_config(GRPOConfig, recipe, ["rewards.giou=2.0", "rewards.accuracy=0.5"])  # weights from the CLI
    assert cfg.rewards == {"giou": 2.0, "format": 0.1, "accuracy": 0.5}


def test_one_grpo_step_logs_every_reward_term(tiny_dir, cells, tmp_path):
    # reasoning on: the instruction reaches the processor's chat template and think_format is a term
    # (tests/test_pipeline.py runs a GRPO stage with the default, reasoning off)
    out = tmp_path / "grpo"
    cfg = GRPOConfig(model=str(tiny_dir), data=[str(cells)], output_dir=str(out), max_steps=1,
                     per_device_train_batch_size=4, num_generations=2, max_completion_length=8,
                     rewards={"giou": 1.0, "accuracy": 0.5, "format": 0.1}, learning_rate=1e-3,
                     logging_steps=1, save_steps=1, max_pixels=4096, reasoning=True)
    assert run(cfg) == out
    (row,) = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "reward" in r]
    for key in ("rewards/giou_reward/mean", "rewards/accuracy_reward/mean", "rewards/format_reward/mean",
                "rewards/think_format_reward/mean", "completions/mean_length", "frac_reward_zero_std", "kl",
                "boxes/predicted", "boxes/true"):
        assert key in row, key
    assert 0 < row["completions/mean_length"] <= 8
    assert (out / "config.json").exists() and (out / "reward.png").exists() and (out / "checkpoint-1").is_dir()


def test_a_set_built_before_rows_had_source_and_modality_is_rebuilt(cells, tmp_path, monkeypatch):
    import medmo.train.grpo as grpo

    meta = tmp_path / "dataset" / "meta.json"
    monkeypatch.delattr(grpo.grpo_row, "version")  # as the builder was before it had a version
    grpo_dataset([str(cells)], tmp_path / "dataset")
    stale = json.loads(meta.read_text())["key"]
    monkeypatch.setattr(grpo.grpo_row, "version", 2, raising=False)
    grpo_dataset([str(cells)], tmp_path / "dataset")
    assert json.loads(meta.read_text())["key"] != stale  # not reused: built again, with the new columns
