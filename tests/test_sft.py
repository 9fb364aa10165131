"""SFT on the tiny model: the collator's labels, module freezing, one real TRL step, resume."""
import json

import pytest
import torch
import yaml

from medmo.config import load_config
from medmo.data.synthetic import write_cell_set
from medmo.model.load import load_model, load_processor
from medmo.train.sft import SFTCollator, SFTConfig, module_of, run, set_trainable, sft_dataset


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    return write_cell_set(tmp_path_factory.mktemp("cells"), "train", 6, n_vqa=2, image_size=64, min_cells=2, max_cells=2)


@pytest.fixture(scope="module")
def rows(cells, tmp_path_factory):
    return list(sft_dataset([str(cells)], tmp_path_factory.mktemp("dataset"))[0])


def test_labels_cover_only_the_assistant_answer(tiny_dir, rows):
    processor = load_processor(tiny_dir)
    batch = SFTCollator(processor)(rows[:2] + rows[-1:])
    tok = processor.tokenizer
    for i, row in enumerate(rows[:2] + rows[-1:]):
        learned = batch["labels"][i][batch["labels"][i] != -100]
        # exactly the answer text and the end-of-turn token, nothing of the prompt or the image
        assert tok.decode(learned) == row["messages"][1]["content"] + "<|im_end|>"
    assert int((batch["input_ids"] == processor.image_token_id).sum()) == 3 * 4  # 64 px -> 2x2 tokens each
    assert batch["pixel_values"].shape[0] == 3 * 16 and batch["image_grid_thw"].shape == (3, 3)


def test_encoder_equals_the_processors_torch_output(tiny_dir, rows):
    """encode_for_training asks for numpy (fast assistant-mask alignment); every tensor must be
    what the processor's own torch path gives, on a padded batch of long and short answers."""
    from medmo.model.chat import encode_for_training

    processor = load_processor(tiny_dir)
    collator = SFTCollator(processor)
    convs = [collator._conversation(r) for r in rows[:2] + rows[-1:]]
    kwargs = {"padding": True, "padding_side": "right", "add_special_tokens": False}
    ours = encode_for_training(processor, convs, collator.chat_template, **kwargs)
    theirs = processor.apply_chat_template(convs, chat_template=collator.chat_template, tokenize=True,
                                           return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True,
                                           processor_kwargs=kwargs)
    assert set(ours) == set(theirs) >= {"input_ids", "attention_mask", "assistant_masks", "pixel_values"}
    for k, v in theirs.items():
        assert isinstance(ours[k], torch.Tensor) and ours[k].dtype == v.dtype and torch.equal(ours[k], v), k
    assert 0 < int(ours["assistant_masks"].sum()) < int(ours["attention_mask"].sum())


def test_unreadable_image_is_skipped_and_counted(tiny_dir, rows, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    collator = SFTCollator(load_processor(tiny_dir))
    batch = collator([rows[0], {**rows[1], "images": [str(bad)]}])
    assert batch["input_ids"].shape[0] == 1 and collator.skipped == {"unreadable image": 1}
    with pytest.raises(ValueError, match="every sample of a batch"):
        collator([{**rows[1], "images": [str(bad)]}])


def test_too_long_samples_are_dropped_not_truncated(tiny_dir, rows):
    collator = SFTCollator(load_processor(tiny_dir), max_length=60)  # VQA rows ~45 tokens, grounding ~60-85
    batch = collator([rows[0], rows[-1]])
    assert batch["input_ids"].shape[0] == 1 and collator.skipped["longer than max_length"] == 1


def test_missing_images_are_counted_before_training(cells, tmp_path):
    lines = cells.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["images"] = ["images/nowhere.png"]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([json.dumps(rec), *lines[1:3]]) + "\n")
    for img in (cells.parent / "images").iterdir():
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / img.name).write_bytes(img.read_bytes())
    dataset, skipped = sft_dataset([str(path)], tmp_path / "dataset")
    assert len(dataset) == 2 and skipped == {"missing image": 1}


def test_modules_and_trainability(tiny_dir, cells):
    assert module_of("model.visual.blocks.0.attn.qkv.weight") == "vision"
    assert module_of("model.visual.merger.linear_fc1.weight") == "merger"
    assert module_of("model.visual.deepstack_merger_list.0.norm.weight") == "merger"
    assert module_of("model.language_model.layers.0.mlp.up_proj.weight") == "llm"
    assert module_of("base_model.model.model.visual.patch_embed.proj.weight") == "vision"  # under PEFT
    model = load_model(tiny_dir)
    counts = set_trainable(model, SFTConfig(model=str(tiny_dir), data=[str(cells)]))  # default: merger + LLM
    assert counts["vision"] == 0 and counts["merger"] > 0 and counts["llm"] > 0
    assert not model.model.visual.blocks[0].attn.qkv.weight.requires_grad


def test_config_errors_are_clear(cells):
    with pytest.raises(ValueError, match="nothing would train"):
        SFTConfig(model="m", data=[str(cells)], train_vision=False, train_merger=False, train_llm=False)
    with pytest.raises(ValueError, match="Did you mean 'learning_rate'"):
        load_config(SFTConfig, None, ["learning_rat=1e-3"], model="m", data=[str(cells)])


def test_one_step_trains_the_chosen_modules_then_resumes(tiny_dir, cells, tmp_path):
    out = tmp_path / "run"
    cfg = SFTConfig(model=str(tiny_dir), data=[str(cells)], output_dir=str(out), max_steps=1,
                    per_device_train_batch_size=2, learning_rate=1e-3, merger_lr=1e-2, train_merger=False,
                    warmup_steps=0, save_steps=1, logging_steps=1, min_pixels=4096, max_pixels=4096,
                    attn_implementation="auto")
    assert run(cfg) == out
    before, after = load_model(tiny_dir), load_model(out)
    changed = {n for (n, p), (_, q) in zip(before.named_parameters(), after.named_parameters()) if not torch.equal(p, q)}
    assert {module_of(n) for n in changed} == {"llm"}  # vision (default off) and merger (off here) stay put
    assert (out / "checkpoint-1").is_dir() and (out / "loss.png").exists() and (out / "config.yaml").exists()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 1 and log[0]["loss"] > 0
    # a longer run in the same folder resumes at step 1 and appends to the same log
    cfg.max_steps = 2
    run(cfg)
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    rows = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[1]["num_tokens"] == rows[0]["num_tokens"] + rows[1]["tokens_per_step"]  # totals survive the resume
    resolved = yaml.safe_load((out / "config.yaml").read_text())["resolved"]
    if not torch.cuda.is_available():
        assert resolved["attn_implementation"] == "sdpa"  # "auto" without CUDA
    assert resolved["dtype"] == "float32"
    assert resolved["trainable_parameters"]["merger"] == 0 and resolved["trainable_parameters"]["llm"] > 0


def test_per_module_learning_rates_reach_the_optimizer(tiny_dir, cells, tmp_path):
    from medmo.train.sft import build_trainer

    cfg = SFTConfig(model=str(tiny_dir), data=[str(cells)], output_dir=str(tmp_path), train_vision=True,
                    learning_rate=1e-4, vision_lr=1e-5, merger_lr=5e-4, max_steps=1)
    trainer, _ = build_trainer(cfg, tmp_path)
    trainer.create_optimizer()
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs == {"vision": 1e-5, "merger": 5e-4, "llm": 1e-4}
    assert all(g["fused"] for g in trainer.optimizer.param_groups)  # CPU: the fused kernel, not a per-tensor loop


def test_lora_step_saves_a_merged_full_checkpoint(tiny_dir, cells, tmp_path):
    from medmo.model.load import LoraConfig

    out = tmp_path / "lora"
    cfg = SFTConfig(model=str(tiny_dir), data=[str(cells)], output_dir=str(out), max_steps=1, warmup_steps=0,
                    per_device_train_batch_size=2, learning_rate=1e-2, save_steps=1, max_pixels=4096,
                    lora=LoraConfig(enabled=True, r=4, alpha=8, dropout=0.0))
    run(cfg)
    merged, base = load_model(out), load_model(tiny_dir)  # a plain Qwen3-VL checkpoint: adapters merged
    assert not any("lora" in n for n, _ in merged.named_parameters())
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(dict(merged.named_parameters())[q], dict(base.named_parameters())[q])
    mlp = "model.language_model.layers.0.mlp.up_proj.weight"  # not a LoRA target: unchanged
    assert torch.equal(dict(merged.named_parameters())[mlp], dict(base.named_parameters())[mlp])


def test_recipe_keys_reach_the_trl_arguments(cells, tmp_path):
    from medmo.train.sft import trl_args

    cfg = load_config(SFTConfig, None, ["ddp_timeout=60", "save_steps=7", "max_grad_norm=0.5"], model="m",
                      data=[str(cells)])
    args = trl_args(cfg, tmp_path)
    assert (args.ddp_timeout, args.save_steps, args.max_grad_norm) == (60, 7, 0.5)
    assert args.remove_unused_columns is False  # the collator needs the raw rows


def test_attn_implementation_auto_resolves_in_one_place():
    from medmo.model.load import resolve_attn_implementation

    assert resolve_attn_implementation("auto", device="cpu") == "sdpa"  # flash-attention needs CUDA
    if not torch.cuda.is_available():
        assert resolve_attn_implementation("auto") == "sdpa"
    assert resolve_attn_implementation("eager") == "eager" and resolve_attn_implementation(None) is None
    with pytest.raises(ValueError, match="per_device_train_batch_size: 1"):  # auto may pick flash on GPUs
        SFTConfig(model="m", data=["d.jsonl"], packing=True, max_length=512, attn_implementation="auto",
                  per_device_train_batch_size=2)


def test_skips_made_in_dataloader_workers_reach_the_log(tiny_dir, tmp_path):
    """Two worker processes run the collator; its skips travel with the batches to log.jsonl,
    beside the build-time skips of the training set."""
    records = write_cell_set(tmp_path, "train", 4, n_vqa=2, image_size=64)
    lines = records.read_text().splitlines()
    (tmp_path / json.loads(lines[0])["images"][0]).write_bytes(b"not a png")  # found only when decoded
    lines.append(json.dumps({**json.loads(lines[1]), "id": "gone", "images": ["images/nowhere.png"]}))
    records.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    cfg = SFTConfig(model=str(tiny_dir), data=[str(records)], output_dir=str(out), per_device_train_batch_size=2,
                    dataloader_num_workers=2, logging_steps=1, warmup_steps=0, save_steps=100, max_pixels=4096)
    run(cfg)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["skipped/unreadable image"] == 1  # counted in a worker process
    assert rows[-1]["skipped/missing image"] == 1  # counted while building the set
    assert rows[-1]["num_trained_tokens"] > 0


_FAULTS = """
import resource, sys, torch
from medmo.train.stage import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
mlp = torch.nn.Sequential(torch.nn.Linear(256, 768), torch.nn.SiLU(), torch.nn.Linear(768, 256))
x = torch.randn(1400, 256)
def step():
    mlp(x).square().mean().backward()
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="a glibc allocator setting")
def test_cpu_training_keeps_freed_memory_instead_of_faulting_it_back():
    """Training steps of an MLP the tiny model's size: with glibc's defaults every step's
    activations are unmapped when freed and faulted back in (11-17k minor faults over 20
    steps here); kept in the heap, 5-6k."""
    import subprocess
    import sys

    faults = {mode: int(subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "keep")}
    assert faults["keep"] < 0.6 * faults["default"], faults
