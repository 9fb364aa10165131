"""LoRA on the tiny Qwen3-VL: train_vision / train_merger / train_llm decide what trains, with real PEFT.

For every allowed combination: the trainable parameters per module group, and one optimizer
step (medmo's per-module AdamW) that moves exactly the enabled groups of the merged model,
which is what `save_final` writes for the next stage.
"""
import itertools

import pytest
import torch

from medmo.data.synthetic import write_cell_set
from medmo.model.load import LoraConfig, load_model
from medmo.train.sft import MODULES, PerModuleAdamW, SFTCollator, SFTConfig, load_for_training, module_of, sft_dataset

LORA = LoraConfig(enabled=True, r=4, alpha=8, dropout=0.0)
# every switch combination that trains something and has a LoRA layer to adapt (merger alone is refused)
COMBOS = [dict(zip(("train_vision", "train_merger", "train_llm"), c)) for c in itertools.product((False, True), repeat=3)
          if any(c) and c != (False, True, False)]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    cells = write_cell_set(folder, "train", 2, n_vqa=1, image_size=64, min_cells=1, max_cells=1)
    return list(sft_dataset([str(cells)], folder / "dataset")[0])


def _changed_groups(before, after) -> set[str]:
    b = dict(before.named_parameters())
    return {module_of(n) for n, p in after.named_parameters() if not torch.equal(p, b[n])}


@pytest.mark.parametrize("switches", COMBOS, ids=lambda s: "+".join(k[6:] for k, v in s.items() if v))
def test_lora_trains_exactly_the_enabled_modules(tiny_dir, rows, switches):
    cfg = SFTConfig(model=str(tiny_dir), data=["unused.jsonl"], lora=LORA, learning_rate=1e-2, **switches)
    enabled = {m for m in MODULES if switches[f"train_{m}"]}
    processor, model, lrs = load_for_training(cfg)
    trainable = {m: sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and module_of(n) == m)
                 for m in MODULES}
    assert {m for m, n in trainable.items() if n} == enabled  # today's bug: vision and merger had 0.00M
    if "merger" in enabled:  # full weights (modules_to_save): at least every merger parameter
        base = sum(p.numel() for n, p in load_model(tiny_dir).named_parameters() if module_of(n) == "merger")
        assert trainable["merger"] >= base

    model.train()
    optimizer = PerModuleAdamW()(model, lrs=lrs)
    model(**SFTCollator(processor)(rows)).loss.backward()
    optimizer.step()
    merged = model.merge_and_unload()  # the plain model save_final writes
    assert not any("lora" in n or "modules_to_save" in n for n, _ in merged.named_parameters())
    assert _changed_groups(load_model(tiny_dir), merged) == enabled


def test_per_module_learning_rates_apply_under_lora(tiny_dir, tmp_path):
    from medmo.train.sft import build_trainer

    cells = write_cell_set(tmp_path, "train", 2, n_vqa=0, image_size=64, min_cells=1, max_cells=1)
    cfg = SFTConfig(model=str(tiny_dir), data=[str(cells)], output_dir=str(tmp_path / "run"), lora=LORA,
                    train_vision=True, learning_rate=1e-4, vision_lr=1e-5, merger_lr=5e-4, max_steps=1)
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    trainer.create_optimizer()
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert {k: g["lr"] for k, g in groups.items()} == {"vision": 1e-5, "merger": 5e-4, "llm": 1e-4}
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    vision = [names[id(p)] for p in groups["vision"]["params"]]
    assert vision and all("lora_" in n for n in vision)  # ViT adapters, not the frozen ViT
    assert all("modules_to_save" in names[id(p)] for p in groups["merger"]["params"])


def test_lora_config_errors_are_clear(tiny_dir):
    with pytest.raises(ValueError, match="only train_merger"):
        SFTConfig(model="m", data=["d.jsonl"], lora=LORA, train_vision=False, train_merger=True, train_llm=False)
    bad = LoraConfig(enabled=True, target_modules=["qkv"])  # a ViT layer name: the LLM has none
    with pytest.raises(ValueError, match="name no layer of the language model"):
        load_for_training(SFTConfig(model=str(tiny_dir), data=["d.jsonl"], lora=bad))
