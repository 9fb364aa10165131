"""What the SFT and GRPO stages share: `StageConfig`, model loading, module freezing and LoRA,
the per-module optimizer, and saving the final model.

`StageConfig` holds the recipe keys both stages read (which checkpoint and records, the
pixel budget, which modules train at which learning rate, LoRA, the schedule, numerics,
checkpoints and logs) and their shared checks. `medmo.train.sft.SFTConfig` and
`medmo.train.grpo.GRPOConfig` extend it and override the defaults that differ (GRPO: a
smaller learning rate, a constant schedule, a frozen merger).

A Qwen3-VL model trains as three units (`MODULES`): the vision tower, the merger (the
vision -> language projection, DeepStack mergers included) and the language model, each
switched on by `train_vision` / `train_merger` / `train_llm` and given its own learning
rate by `PerModuleAdamW`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from medmo.config import make_run_dir
from medmo.model.load import DTYPES, LoraConfig

logger = logging.getLogger(__name__)

MODULES = ("vision", "merger", "llm")


@dataclass
class StageConfig:
    """The recipe keys every training stage has. A subclass sets `trainer`'s default to its kind."""

    model: str  # starting checkpoint: a folder written by save_pretrained, or a hub id
    data: list[str]  # unified-record files (.jsonl/.parquet); image paths resolve against each file's folder
    mixture: str | None = None  # the `medmo data mix` recipe that builds `data` (what --rehearse converts and mixes)
    trainer: str = ""  # the recipe kind (medmo train dispatches on it): "sft" or "grpo", the subclass's
    output_dir: str = "runs/stage"  # the run folder: checkpoints, log.jsonl, plots and the final model
    max_samples: int | None = None  # use only the first N records (smoke tests, ablations)
    dataset_num_proc: int = 1  # processes that build the training set (and measure lengths for packing)
    ddp_timeout: int = 7200  # seconds other ranks wait while rank 0 builds the set (and packing plan)
    # --- resolution budget (the processor resizes every image into [min_pixels, max_pixels])
    min_pixels: int | None = None  # None keeps the checkpoint's processor setting
    max_pixels: int | None = None  # e.g. 768*768 in stage 1, 1280*1280 in stage 2
    # --- which modules train, and how fast (None = learning_rate)
    train_vision: bool = False  # the ViT blocks and patch embedding
    train_merger: bool = True  # the patch merger and DeepStack mergers (vision -> LLM projection)
    train_llm: bool = True  # the language model, embeddings and LM head
    learning_rate: float = 1e-5  # base learning rate (the LLM's)
    vision_lr: float | None = None  # vision tower learning rate (MedMO-style recipes use ~0.1x the LLM's)
    merger_lr: float | None = None  # merger learning rate
    lora: LoraConfig = field(default_factory=LoraConfig)  # LoRA adapters instead of full weights
    # --- schedule
    max_steps: int = -1  # > 0 overrides num_train_epochs
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "cosine"  # any transformers scheduler name
    warmup_steps: float = 0.03  # < 1: a fraction of all steps; >= 1: a number of steps
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    # --- numerics and memory
    dtype: str = "float32"  # weights: float32 on CPU; bfloat16 on GPUs (with bf16: true)
    bf16: bool = False  # bf16 autocast (GPU)
    gradient_checkpointing: bool = False  # trade compute for memory (large models)
    attn_implementation: str | None = None  # "auto" (flash_attention_2 if CUDA + flash_attn, else sdpa), "sdpa", ...
    # --- checkpoints and logs
    save_steps: int = 500  # checkpoint every N optimizer steps (resumable)
    save_total_limit: int | None = 2  # keep the newest N checkpoints
    resume: bool = True  # continue from the newest checkpoint-* in output_dir if there is one
    logging_steps: int = 10
    report_to: str = "none"  # "wandb", "tensorboard", ... (log.jsonl is always written)

    def __post_init__(self):
        kind = type(self).__dataclass_fields__["trainer"].default
        if self.trainer != kind:
            raise ValueError(f"trainer must be {kind!r} for this config, got {self.trainer!r}")
        self.data = data_list(self.data)
        if isinstance(self.lora, dict):  # SFTConfig(lora={...}) in code; recipes arrive converted by load_config
            self.lora = LoraConfig(**self.lora)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        check_trainable(self)
        if self.dataset_num_proc < 1:
            raise ValueError(f"dataset_num_proc must be >= 1, got {self.dataset_num_proc}")
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels {self.min_pixels} > max_pixels {self.max_pixels}")


def data_list(data: str | list[str]) -> list[str]:
    """A recipe's `data:` as a non-empty list (one path may be written without brackets)."""
    data = [data] if isinstance(data, str) else data
    if not data:
        raise ValueError("data: give at least one record file (.jsonl or .parquet)")
    return data


# ---------------------------------------------------------------------------- modules


def module_of(param_name: str) -> str:
    """Which trainable unit a Qwen3-VL parameter belongs to: vision, merger or llm."""
    if ".visual.merger" in param_name or ".visual.deepstack_merger_list" in param_name:
        return "merger"
    if ".visual." in param_name or param_name.startswith("visual."):
        return "vision"
    return "llm"


def check_trainable(cfg: StageConfig) -> None:
    """A stage config (SFT or GRPO) trains something, and its LoRA settings have an adapter to place."""
    if not (cfg.train_vision or cfg.train_merger or cfg.train_llm):
        raise ValueError("train_vision, train_merger and train_llm are all false: nothing would train")
    if cfg.lora.enabled and not (cfg.train_vision or cfg.train_llm):
        raise ValueError("lora.enabled with only train_merger: LoRA has no layer to adapt (under LoRA the merger "
                         "trains its full weights anyway); set lora.enabled: false to train the merger alone")


def lora_model(model, cfg: StageConfig):
    """Wrap `model` in PEFT LoRA for exactly the modules the stage trains (no-op without lora.enabled).

    - LLM (train_llm): adapters on the language model's layers named in `lora.target_modules`
      (name suffixes: q_proj, ..., down_proj), as Qwen's own fine-tuning script does.
    - Vision tower (train_vision): adapters on every linear layer of the ViT blocks (qkv, proj,
      linear_fc1/2). Not `modules_to_save`: that trains a full copy of the ViT (0.30B matmul
      parameters in Qwen3-VL-4B, 0.41B in 8B) beside the frozen original, with its optimizer
      state, which is what a LoRA budget run exists to avoid.
    - Merger (train_merger): `modules_to_save`, i.e. full weights for the patch merger and the
      DeepStack mergers (0.11B / 0.16B): the small vision-to-language bridge that full
      fine-tuning recipes train whole (Qwen's script: `tune_mm_mlp`). PEFT stores them in each
      checkpoint with the adapters, so a resumed run keeps them, and `merge_and_unload` puts
      them back into the plain model that `save_final` writes.

    Without this the targets (q_proj, ...) exist only in the LLM and the vision side silently
    stays frozen whatever train_vision/train_merger say; Qwen's train_qwen.py does the same
    (under `lora_enable` it freezes everything and ignores tune_mm_vision / tune_mm_mlp).
    """
    if not cfg.lora.enabled:
        return model
    import torch
    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    lora = cfg.lora
    modules = dict(model.named_modules())
    targets, to_save = [], []
    for name, mod in modules.items():
        unit, parent = module_of(name), name.rpartition(".")[0]
        if unit == "llm" and cfg.train_llm and name.rpartition(".")[2] in lora.target_modules:
            targets.append(name)
        elif unit == "vision" and cfg.train_vision and ".blocks." in name and isinstance(mod, torch.nn.Linear):
            targets.append(name)
        elif (unit == "merger" and cfg.train_merger and not isinstance(mod, torch.nn.ModuleList)
              and (module_of(parent) != "merger" or isinstance(modules[parent], torch.nn.ModuleList))):
            to_save.append(name)  # the top-most merger modules (ModuleList items, not the list)
    if cfg.train_llm and not any(module_of(t) == "llm" for t in targets):
        raise ValueError(f"lora.target_modules {lora.target_modules} name no layer of the language model; "
                         "Qwen3-VL's are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj")
    peft_cfg = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                              modules_to_save=to_save or None, task_type="CAUSAL_LM")
    return get_peft_model(model, peft_cfg)


def set_trainable(model, cfg: StageConfig) -> dict[str, int]:
    """Freeze the modules a stage does not train; return trainable parameter counts per module.

    With LoRA, PEFT has already frozen base weights: a disabled module's adapters are frozen too.
    """
    enabled = {"vision": cfg.train_vision, "merger": cfg.train_merger, "llm": cfg.train_llm}
    counts = dict.fromkeys(MODULES, 0)
    for name, p in model.named_parameters():
        unit = module_of(name)
        if not enabled[unit]:
            p.requires_grad_(False)
        elif not cfg.lora.enabled:
            p.requires_grad_(True)
        if p.requires_grad:
            counts[unit] += p.numel()
    return counts


class PerModuleAdamW:
    """An optimizer factory for transformers' Trainer: AdamW with one param group per module.

    Trainer calls `PerModuleAdamW()(model, **kwargs)` when the model is ready (after any
    distributed wrapping), so the groups always hold the parameters that will train.
    """

    def __call__(self, model, lrs: dict[str, float], weight_decay: float = 0.0, **adam_kwargs):
        import torch

        groups: dict[str, list] = {m: [] for m in MODULES}
        for name, p in model.named_parameters():
            if p.requires_grad:
                groups[module_of(name)].append(p)
        param_groups = [{"params": ps, "lr": lrs[m], "weight_decay": weight_decay, "name": m}
                        for m, ps in groups.items() if ps]
        params = [p for ps in groups.values() for p in ps]
        if params and all(p.device.type == "cpu" for p in params):
            # torch's CPU default steps one tensor at a time: 10 ms a step for the tiny model's
            # 99 tensors, 2.5 ms fused (bench/RESULTS.md); on GPUs its own default stays.
            adam_kwargs.setdefault("fused", True)
        return torch.optim.AdamW(param_groups, **adam_kwargs)


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in the process instead of handing it back to the OS.

    For CPU training. glibc serves large blocks with mmap and unmaps them when they are freed,
    and trims the top of its heap, so every training step faults its activations back in page by page: a
    `medmo demo` took 15.6M minor page faults and 31 s of system time. Raising the mmap and
    trim thresholds (32 MB: above every tiny-model tensor) keeps freed blocks for reuse: the
    demo's stage 2 ran 8-10% faster with identical losses (bench/RESULTS.md). Resident memory
    stays near the peak a step reaches anyway. False where the C library is not glibc.
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL("libc.so.6").mallopt
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


# ---------------------------------------------------------------------------- load and save


def load_for_training(cfg: StageConfig, run_dir: Path | None = None) -> tuple:
    """(processor at the stage's pixel budget, model with the untrained modules frozen, per-module LRs).

    Shared by SFT and GRPO (fields of StageConfig). With `run_dir`, the run's
    config.yaml also records what "auto" resolved to (attention implementation, dtype) and
    the trainable parameters per module.
    """
    from medmo.model.load import load_model, load_processor

    processor = load_processor(cfg.model, cfg.min_pixels, cfg.max_pixels)
    model = lora_model(load_model(cfg.model, dtype=cfg.dtype, attn_implementation=cfg.attn_implementation), cfg)
    counts = set_trainable(model, cfg)
    logger.info("trainable parameters: %s", {k: f"{v / 1e6:.2f}M" for k, v in counts.items()})
    if run_dir is not None:
        resolved = {"attn_implementation": model.config._attn_implementation,
                    "dtype": str(model.dtype).removeprefix("torch."), "trainable_parameters": counts}
        make_run_dir(run_dir, cfg, extra={"resolved": resolved})
    lrs = {"llm": cfg.learning_rate, "vision": cfg.vision_lr or cfg.learning_rate,
           "merger": cfg.merger_lr or cfg.learning_rate}
    return processor, model, lrs


def save_final(trainer, run_dir: Path) -> None:
    """Save the trained model (LoRA merged into full weights) and the processor at run_dir."""
    from accelerate.utils import is_peft_model

    model = trainer.accelerator.unwrap_model(trainer.model)
    if not is_peft_model(model):
        trainer.save_model(str(run_dir))  # gathers sharded weights (ZeRO-3, FSDP); saves the processor too
        return
    merged = model.merge_and_unload()
    if trainer.is_world_process_zero():
        merged.save_pretrained(run_dir)
        trainer.processing_class.save_pretrained(run_dir)
