"""Stages 1-3 of MedMO: supervised fine-tuning of Qwen3-VL on unified records, on TRL's SFTTrainer.

    medmo train recipes/tiny/stage1_sft.yaml                       # CPU, the tiny model
    medmo train recipes/tiny/stage1_sft.yaml max_steps=20 learning_rate=1e-3
    accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml \\
        -m medmo train recipes/medmo-8b/stage1_sft.yaml           # GPUs

One `SFTConfig` (the recipe's keys) drives one stage: which record files, which pixel
budget (MedMO: 768x768 in stage 1, 1280x1280 in stage 2), which modules train (vision
tower / merger / LLM) at which learning rate, optional LoRA. The loss is on assistant
tokens only (the chat template's `{% generation %}` marks; TRL's Qwen3-VL training
template is used when a checkpoint's own template has none). The records are streamed
into a memory-mapped Arrow file in the run folder (medmo.train.data: memory stays flat
at any data size) and images are opened lazily in `SFTCollator`, so a run never holds
the whole set, nor its decoded pixels, in memory.

Runs are resumable: checkpoints every `save_steps` in the run folder, and a restarted run
continues from the newest one (`resume: true`). The final model (LoRA merged) and its
processor are saved at the run folder's root, so the next stage, `medmo eval` and
`medmo infer` take the folder as `--model`. log.jsonl holds every logged step, with real
token counts and skipped samples by reason (medmo.train.callbacks.RunCounts: TRL's
`num_tokens` counts rows of a packed batch, and counts kept in dataloader workers are lost);
loss.png is drawn at the end.

Departures from the paper: none in the recipe's logic; MedMO's data mixture and sizes are
in recipes/medmo-*/. TRL refuses to pack vision samples, so `packing` is medmo's own
(medmo.train.packing); without it batches are padded.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from medmo.config import make_run_dir
from medmo.data.schema import Record
from medmo.model.load import DTYPES, LoraConfig
from trl import SFTTrainer

from medmo.train.callbacks import COUNTS, JsonlLogCallback, RunCounts, common_trainer_args, last_checkpoint, plot_curve
from medmo.train.data import build_dataset, image_paths

logger = logging.getLogger(__name__)

MODULES = ("vision", "merger", "llm")


@dataclass
class SFTConfig:
    """One supervised stage. Every field is a recipe key (recipes/*/stage{1,2,3}_sft.yaml)."""

    model: str  # starting checkpoint: a folder written by save_pretrained, or a hub id
    data: list[str]  # unified-record files (.jsonl/.parquet); image paths resolve against each file's folder
    mixture: str | None = None  # the `medmo data mix` recipe that builds `data` (what --rehearse converts and mixes)
    trainer: str = "sft"  # the recipe kind (medmo train dispatches on it); must be "sft"
    output_dir: str = "runs/sft"  # the run folder: checkpoints, log.jsonl, loss.png and the final model
    max_samples: int | None = None  # use only the first N records (smoke tests, ablations)
    # --- resolution budget (the processor resizes every image into [min_pixels, max_pixels])
    min_pixels: int | None = None  # None keeps the checkpoint's processor setting
    max_pixels: int | None = None  # e.g. 768*768 in stage 1, 1280*1280 in stage 2
    max_length: int | None = None  # drop (and count) samples longer than this many tokens; never cut images
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
    packing: bool = False  # multimodal packing (medmo.train.packing) instead of padding; max_length = row budget
    dataset_num_proc: int = 1  # processes that build the training set and measure lengths for packing (millions of samples)
    ddp_timeout: int = 7200  # seconds other ranks wait while rank 0 builds the set (and packing plan)
    trace_ids: bool = False  # write each batch's sample ids to sample_ids.rank*.jsonl (packing; audits sharding/resume)
    dataloader_num_workers: int = 0  # image decoding workers
    # --- checkpoints and logs
    save_steps: int = 500  # checkpoint every N optimizer steps (resumable)
    save_total_limit: int | None = 2  # keep the newest N checkpoints
    resume: bool = True  # continue from the newest checkpoint-* in output_dir if there is one
    logging_steps: int = 10
    report_to: str = "none"  # "wandb", "tensorboard", ... (log.jsonl is always written)

    def __post_init__(self):
        if self.trainer != "sft":
            raise ValueError(f"trainer must be 'sft' for this config, got {self.trainer!r}")
        self.data = data_list(self.data)
        if isinstance(self.lora, dict):  # SFTConfig(lora={...}) in code; recipes arrive converted by load_config
            self.lora = LoraConfig(**self.lora)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        check_trainable(self)
        if self.packing and not self.max_length:
            raise ValueError("packing: true needs max_length, the token budget of a packed row (e.g. 8192)")
        flash = "flash" in (self.attn_implementation or "") or self.attn_implementation == "auto"
        if self.packing and flash and self.per_device_train_batch_size != 1:
            raise ValueError("packing with flash attention (or auto, which picks it on GPUs) needs "
                             "per_device_train_batch_size: 1: the varlen kernel reads sample boundaries from one "
                             "packed row per device (sdpa takes any batch size)")
        if self.trace_ids and not self.packing:
            raise ValueError("trace_ids is written by the packed collator: set packing: true as well")
        if self.dataset_num_proc < 1:
            raise ValueError(f"dataset_num_proc must be >= 1, got {self.dataset_num_proc}")
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels {self.min_pixels} > max_pixels {self.max_pixels}")


# ---------------------------------------------------------------------------- data


def data_list(data: str | list[str]) -> list[str]:
    """A recipe's `data:` as a non-empty list (one path may be written without brackets)."""
    data = [data] if isinstance(data, str) else data
    if not data:
        raise ValueError("data: give at least one record file (.jsonl or .parquet)")
    return data


SFT_JSON_COLUMNS = ("messages",)


def sft_row(rec: Record, base: Path) -> dict | str:
    """A record -> an SFT row {"id", "messages", "images" (resolved paths)}, or why it is skipped."""
    if not any(m["role"] == "assistant" for m in rec.messages):
        return "no assistant turn"
    images = image_paths(rec, base)
    if isinstance(images, str):
        return images
    return {"id": rec.id, "messages": rec.messages, "images": images}


def sft_dataset(paths: list[str], folder: str | Path, max_samples: int | None = None, num_proc: int = 1):
    """(memory-mapped dataset of SFT rows, skip counts) built under `folder` (medmo.train.data)."""
    return build_dataset(paths, sft_row, folder, max_samples, json_columns=SFT_JSON_COLUMNS, num_proc=num_proc)


class SFTCollator:
    """Rows {"messages" with <image> placeholders, "images": paths} -> a padded Qwen3-VL batch.

    Labels are -100 everywhere but the assistant turns (the template's generation marks).
    A sample whose image cannot be read, or that is longer than `max_length`, is dropped
    from its batch and counted in `self.skipped` by reason; a batch left empty raises. The
    batch carries its own counts under `COUNTS` (non-pad tokens, this batch's skips), which
    the trainer removes before the forward pass.
    """

    def __init__(self, processor, max_length: int | None = None):
        from trl.chat_template_utils import get_training_chat_template

        self.processor = processor
        self.max_length = max_length
        self.chat_template = get_training_chat_template(processor)  # None: the checkpoint's own has the marks
        self.skipped: Counter = Counter()

    def _conversation(self, row: dict) -> list[dict] | None:
        from medmo.imaging import open_image
        from medmo.model.chat import to_conversation

        try:
            images = iter([open_image(p) for p in row["images"]])
        except (OSError, ValueError) as e:
            self.skipped["unreadable image"] += 1
            logger.warning("skipping %s: %s", row.get("id", "?"), e)
            return None
        conv = to_conversation(row["messages"])
        for turn in conv:
            for part in turn["content"]:
                if part["type"] == "image":
                    part["image"] = next(images)
        return conv

    def _encode(self, convs: list[list[dict]]):
        return self.processor.apply_chat_template(
            convs, chat_template=self.chat_template, tokenize=True, return_dict=True, return_tensors="pt",
            return_assistant_tokens_mask=True,
            processor_kwargs={"padding": True, "padding_side": "right", "add_special_tokens": False},
        )

    def __call__(self, rows: list[dict]) -> dict:
        before = Counter(self.skipped)
        convs = [c for c in (self._conversation(r) for r in rows) if c is not None]
        if not convs:
            raise ValueError(f"every sample of a batch was unusable ({dict(self.skipped)}); check the record files")
        batch = self._encode(convs)
        if self.max_length is not None:
            lengths = batch["attention_mask"].sum(1).tolist()
            keep = [c for c, n in zip(convs, lengths) if n <= self.max_length]
            if len(keep) < len(convs):
                self.skipped["longer than max_length"] += len(convs) - len(keep)
                if not keep:
                    raise ValueError(f"every sample of a batch is longer than max_length={self.max_length}")
                batch = self._encode(keep)
        labels = batch["input_ids"].clone()
        labels[batch.pop("assistant_masks") == 0] = -100
        labels[batch["attention_mask"] == 0] = -100
        batch["labels"] = labels
        batch[COUNTS] = {"tokens": int(batch["attention_mask"].sum()), "skipped": dict(self.skipped - before)}
        return dict(batch)


# ---------------------------------------------------------------------------- modules


def module_of(param_name: str) -> str:
    """Which trainable unit a Qwen3-VL parameter belongs to: vision, merger or llm."""
    if ".visual.merger" in param_name or ".visual.deepstack_merger_list" in param_name:
        return "merger"
    if ".visual." in param_name or param_name.startswith("visual."):
        return "vision"
    return "llm"


def check_trainable(cfg) -> None:
    """A stage config (SFT or GRPO) trains something, and its LoRA settings have an adapter to place."""
    if not (cfg.train_vision or cfg.train_merger or cfg.train_llm):
        raise ValueError("train_vision, train_merger and train_llm are all false: nothing would train")
    if cfg.lora.enabled and not (cfg.train_vision or cfg.train_llm):
        raise ValueError("lora.enabled with only train_merger: LoRA has no layer to adapt (under LoRA the merger "
                         "trains its full weights anyway); set lora.enabled: false to train the merger alone")


def lora_model(model, cfg):
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


def set_trainable(model, cfg: SFTConfig) -> dict[str, int]:
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
        return torch.optim.AdamW(param_groups, **adam_kwargs)


# ---------------------------------------------------------------------------- run


class CountingSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer, plus each batch's `COUNTS` added up and logged (medmo.train.callbacks.RunCounts).

    The one hook medmo needs: the counts must leave the batch before the model sees it.
    """

    def __init__(self, *args, counts: RunCounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.counts = counts

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        counts = inputs.pop(COUNTS, None)
        if counts is not None and model.training:
            self.counts.add(counts, inputs["labels"])
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if self.model.training:
            from accelerate.utils import gather_object

            self._metrics["train"].pop("num_tokens", None)  # TRL's: rows, not tokens, for packed batches
            logs.update(self.counts.logs(self.state, gather_object))
        super().log(logs, start_time)


def trl_args(cfg: SFTConfig, run_dir: Path):
    """medmo's SFTConfig -> TRL's SFTConfig (the knobs medmo does not expose keep TRL's defaults)."""
    from trl import SFTConfig as TRLSFTConfig

    return TRLSFTConfig(
        **common_trainer_args(cfg, run_dir), dataloader_num_workers=cfg.dataloader_num_workers, max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True},
    )


def load_for_training(cfg, run_dir: Path | None = None) -> tuple:
    """(processor at the stage's pixel budget, model with the untrained modules frozen, per-module LRs).

    Shared by SFT and GRPO: their configs name these fields alike. With `run_dir`, the run's
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


def build_trainer(cfg: SFTConfig, run_dir: Path):
    """The SFT trainer for one stage (model loaded, modules frozen, data wired)."""
    args = trl_args(cfg, run_dir)  # before the model: under ZeRO-3 it makes from_pretrained load sharded
    with args.main_process_first(local=False, desc="training set"):  # rank 0 builds it, the others reuse it
        train_dataset, skipped = sft_dataset(cfg.data, run_dir / "dataset", cfg.max_samples, cfg.dataset_num_proc)
    processor, model, lrs = load_for_training(cfg, run_dir if args.process_index == 0 else None)
    collator = SFTCollator(processor, max_length=cfg.max_length)
    if cfg.packing:
        from medmo.train.packing import pack_for_sft

        with args.main_process_first(local=False, desc="packing plan"):  # rank 0 measures, the others reuse
            train_dataset, collator, plan = pack_for_sft(
                train_dataset, collator, cfg.max_length, cache_file=run_dir / "packing_lengths.json",
                trace_file=run_dir / "sample_ids.jsonl" if cfg.trace_ids else None, num_proc=cfg.dataset_num_proc)
        skipped = skipped + plan.skipped()
    trainer = CountingSFTTrainer(
        model=model, args=args, train_dataset=train_dataset,
        processing_class=processor, data_collator=collator,
        optimizer_cls_and_kwargs=(PerModuleAdamW, {"lrs": lrs, "weight_decay": cfg.weight_decay}),
        callbacks=[JsonlLogCallback(run_dir / "log.jsonl", stage=run_dir.name)], counts=RunCounts(skipped),
    )
    return trainer, collator


def prepare(cfg: SFTConfig, processor_from: str | None = None) -> dict:
    """Build the stage's training set and packing plan in its run folder, without the model.

    `medmo train RECIPE --prepare` runs this on a CPU node before GPUs are booked; the
    training run then finds both files and skips straight to step 1. Returns a summary.
    `processor_from` loads the processor from another checkpoint (a pipeline's later
    stages, whose own starting model does not exist yet).
    """
    from medmo.model.load import load_processor
    from medmo.train.packing import plan_for

    run_dir = make_run_dir(cfg.output_dir, cfg)
    dataset, skipped = sft_dataset(cfg.data, run_dir / "dataset", cfg.max_samples, cfg.dataset_num_proc)
    summary = {"stage": run_dir.name, "run_dir": str(run_dir), "samples": len(dataset), "skipped": dict(skipped)}
    if cfg.packing:
        processor = load_processor(processor_from or cfg.model, cfg.min_pixels, cfg.max_pixels)
        plan = plan_for(dataset, processor, cfg.max_length, chat_template=SFTCollator(processor).chat_template,
                        cache_file=run_dir / "packing_lengths.json", num_proc=cfg.dataset_num_proc)
        summary["packing"] = plan.summary()
    return summary


def run(cfg: SFTConfig) -> Path:
    """Train one stage; returns the run folder (final model + processor at its root)."""
    run_dir = make_run_dir(cfg.output_dir, cfg)
    trainer, _ = build_trainer(cfg, run_dir)
    resume_from = last_checkpoint(run_dir) if cfg.resume else None
    if resume_from:
        logger.info("resuming from %s", resume_from)
    trainer.train(resume_from_checkpoint=resume_from)
    if trainer.counts.skipped():
        logger.warning("samples skipped (set, packing plan and batches; by reason): %s", trainer.counts.skipped())
    save_final(trainer, run_dir)
    if trainer.is_world_process_zero():
        plot_curve(run_dir / "log.jsonl", ["loss"], run_dir / "loss.png", title=f"{run_dir.name}: training loss")
    return run_dir


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
