"""Every shipped recipe loads into its dataclass; the MedMO-4B/8B recipes resolve (no model
is downloaded or loaded) and say what the paper says; the accelerate configs parse."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medmo.config import load_config
from medmo.train import RUNNERS, recipe_kind
from medmo.train.pipeline import PipelineConfig, stage_configs

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TRAINING = sorted(p for p in RECIPES.rglob("*.yaml")
                  if isinstance(d := yaml.safe_load(p.read_text()), dict) and "trainer" in d)


def test_training_recipes_are_found():
    names = {str(p.relative_to(RECIPES)) for p in TRAINING}
    for size in ("tiny", "medmo-4b", "medmo-8b"):
        for stage in ("stage1_sft", "stage2_sft", "stage3_sft", "stage4_grpo", "pipeline"):
            assert f"{size}/{stage}.yaml" in names


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_loads_into_its_dataclass(path):
    config_cls = RUNNERS.get(recipe_kind(path)).config
    cfg = load_config(config_cls, path)
    assert type(cfg) is config_cls
    if isinstance(cfg, PipelineConfig):
        assert len(stage_configs(cfg)) == len(cfg.stages)  # every stage recipe resolves too


# The paper's sizes: 768^2 then 1280^2 pixel budgets; stage comments carry the data sizes.
PAPER = {"stage1_sft": (768 * 768, "18.5M"), "stage2_sft": (1280 * 1280, "3M"), "stage3_sft": (None, "4.3M"),
         "stage4_grpo": (None, "300K")}


@pytest.mark.parametrize("size,base", [("medmo-4b", "Qwen/Qwen3-VL-4B-Instruct"),
                                       ("medmo-8b", "Qwen/Qwen3-VL-8B-Instruct")])
def test_medmo_pipeline_resolves_without_download(size, base, monkeypatch):
    import transformers

    def no_download(*a, **k):
        raise AssertionError("resolving a recipe must not load a model")

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", no_download)
    monkeypatch.setattr(transformers.Qwen3VLForConditionalGeneration, "from_pretrained", no_download)
    pipe = load_config(PipelineConfig, RECIPES / size / "pipeline.yaml")
    stages = stage_configs(pipe)
    assert [k for k, _ in stages] == ["sft", "sft", "sft", "grpo"]
    assert stages[0][1].model == base
    for (_, prev), (_, cur) in zip(stages, stages[1:]):
        assert cur.model == prev.output_dir  # each stage starts from the previous one's run folder
    for path, (_, cfg) in zip(pipe.stages, stages):
        name = Path(path).stem
        pixels, n_samples = PAPER[name]
        if pixels:
            assert cfg.max_pixels == pixels
        text = Path(path).read_text()
        assert n_samples in text.split("\n\n")[0]  # the header states the paper's data size
        assert "accelerate launch --config_file recipes/accelerate/" in text and f"recipes/{size}/{name}.yaml" in text
        assert cfg.dtype == "bfloat16" and cfg.bf16
        if name.endswith("sft"):
            assert cfg.packing and cfg.max_length
    grpo = stages[-1][1]
    assert grpo.beta > 0 and grpo.use_vllm and grpo.vllm_mode == "colocate"
    assert [s[1].train_vision for s in stages] == [True, True, False, False]  # the ViT adapts in stages 1-2


def test_lora_is_one_override_away():
    path = RECIPES / "medmo-4b" / "stage1_sft.yaml"
    config_cls = RUNNERS.get(recipe_kind(path)).config
    cfg = load_config(config_cls, path, ["lora.enabled=true", "lora.r=16"])
    assert cfg.lora.enabled and cfg.lora.r == 16 and "gate_proj" in cfg.lora.target_modules


def test_unknown_recipe_key_fails_before_any_model():
    path = RECIPES / "medmo-8b" / "stage1_sft.yaml"
    config_cls = RUNNERS.get(recipe_kind(path)).config
    with pytest.raises(ValueError, match="learning_rate"):
        load_config(config_cls, path, ["learning_rat=1e-5"])


@pytest.mark.parametrize("name", ["deepspeed_zero2", "deepspeed_zero3", "fsdp", "multi_node", "cpu_ddp"])
def test_accelerate_configs_parse(name):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(RECIPES / "accelerate" / f"{name}.yaml"))
    expected = {"deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED", "fsdp": "FSDP",
                "multi_node": "DEEPSPEED", "cpu_ddp": "MULTI_GPU"}[name]
    assert str(cfg.distributed_type).endswith(expected)
    if name.startswith("deepspeed"):
        assert cfg.deepspeed_config["zero_stage"] == int(name[-1])
    if name == "fsdp":
        assert cfg.fsdp_config["fsdp_version"] == 2
    if name == "multi_node":
        assert cfg.num_machines > 1 and cfg.num_processes % cfg.num_machines == 0
    if name == "cpu_ddp":
        assert cfg.use_cpu and cfg.mixed_precision == "no"


MIX_SIZES = {"stage1": "18.5M", "stage2": "3M", "stage3": "4.3M", "stage4": "300K"}


@pytest.mark.parametrize("size", ["medmo-4b", "medmo-8b"])
def test_every_stage_names_a_shipped_mixture_that_states_the_papers_size(size):
    from medmo.data.mixture import MixtureConfig

    pipe = load_config(PipelineConfig, RECIPES / size / "pipeline.yaml")
    for i, (_, cfg) in enumerate(stage_configs(pipe), 1):
        assert cfg.mixture == f"recipes/data/stage{i}_mix.yaml"
        mix_path = RECIPES.parent / cfg.mixture
        mix = load_config(MixtureConfig, mix_path)
        assert [Path(d).resolve() for d in cfg.data] == [Path(mix.out).resolve()]  # the stage reads what the mix writes
        assert MIX_SIZES[mix.name] in mix_path.read_text().split("\nname:")[0]  # the header states the paper's size
        if mix.total is not None and mix.name != "stage2":
            # weights are written in thousands of samples: they add up to the paper's size
            assert sum(s.weight for s in mix.sources) * 1000 == mix.total


def test_stage3_and_stage4_mixtures_cover_the_papers_tasks():
    from medmo.data.mixture import MixtureConfig
    from medmo.data.sources import get_source

    tasks = {}
    for stage in ("stage3", "stage4"):
        mix = load_config(MixtureConfig, RECIPES / "data" / f"{stage}_mix.yaml")
        found = set()
        for s in mix.sources:
            src = get_source(s.converter)  # every source names a registered converter
            found |= {"retrieval"} if s.derive == "retrieval" else set(src.tasks)
        tasks[stage] = found
    assert {"vqa", "caption", "report", "retrieval", "grounding", "mcq"} <= tasks["stage3"]
    assert {"grounding", "vqa", "mcq", "report", "retrieval"} <= tasks["stage4"]
    assert "caption" not in tasks["stage4"]  # nothing a reward cannot verify


# Releases whose every labelled item is a benchmark's test set: no training mixture may name them.
TEST_ONLY_SOURCES = {"nih_chestxray14": "the 984 boxes of BBox_List_2017.csv are the NIH grounding benchmark"}


@pytest.mark.parametrize("mix", sorted((RECIPES / "data").glob("stage*_mix.yaml")), ids=lambda p: p.name)
def test_no_training_mixture_names_a_benchmark_only_release(mix):
    from medmo.data.mixture import MixtureConfig

    names = {s.converter for s in load_config(MixtureConfig, mix).sources}
    assert not names & set(TEST_ONLY_SOURCES), {n: TEST_ONLY_SOURCES[n] for n in names & set(TEST_ONLY_SOURCES)}
