"""GRPO on the tiny model: one real TRL step with the registered rewards, and config checks."""
import json

import pytest

from medmo.config import load_config
from medmo.data.synthetic import write_cell_set
from medmo.train.grpo import GRPOConfig, grpo_dataset, run


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    return write_cell_set(tmp_path_factory.mktemp("cells"), "train", 4, n_vqa=2, image_size=64, max_cells=2)


def test_rows_carry_task_answer_and_image_size(cells, tmp_path):
    dataset, skipped = grpo_dataset([str(cells)], tmp_path / "dataset")
    rows = list(dataset)
    assert not skipped and len(rows) == 6
    ground, vqa = rows[0], rows[-1]
    assert ground["task"] == "grounding" and ground["image_size"] == [64, 64]
    assert json.loads(ground["answer"])["boxes"] and vqa["image_size"] is None
    # the prompt is the user turn only, image placeholder first, as the processor's chat format
    assert [m["role"] for m in ground["prompt"]] == ["user"]
    assert ground["prompt"][0]["content"][0] == {"type": "image"}
    assert [im.mode for im in ground["images"]] == ["RGB"]  # opened on access


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
    out = tmp_path / "grpo"
    cfg = GRPOConfig(model=str(tiny_dir), data=[str(cells)], output_dir=str(out), max_steps=1,
                     per_device_train_batch_size=4, num_generations=2, max_completion_length=8,
                     rewards={"giou": 1.0, "accuracy": 0.5, "format": 0.1}, learning_rate=1e-3,
                     logging_steps=1, save_steps=1, max_pixels=4096)
    assert run(cfg) == out
    (row,) = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "reward" in r]
    for key in ("rewards/giou_reward/mean", "rewards/accuracy_reward/mean", "rewards/format_reward/mean",
                "completions/mean_length", "frac_reward_zero_std", "kl"):
        assert key in row, key
    assert 0 < row["completions/mean_length"] <= 8
    assert (out / "config.json").exists() and (out / "reward.png").exists() and (out / "checkpoint-1").is_dir()
