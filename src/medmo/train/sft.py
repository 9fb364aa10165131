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
from dataclasses import dataclass
from pathlib import Path

from trl import SFTTrainer

from medmo.config import make_run_dir
from medmo.data.schema import Record
from medmo.model.chat import encode_for_training
from medmo.train.callbacks import COUNTS, JsonlLogCallback, RunCounts, common_trainer_args, last_checkpoint, plot_curve
from medmo.train.data import build_dataset, image_paths
from medmo.train.stage import PerModuleAdamW, StageConfig, keep_freed_memory, load_for_training, save_final
# re-exported: callers and tests name the module helpers through medmo.train.sft too
from medmo.train.stage import MODULES, module_of, set_trainable  # noqa: F401

logger = logging.getLogger(__name__)


@dataclass
class SFTConfig(StageConfig):
    """One supervised stage. Every field is a recipe key (recipes/*/stage{1,2,3}_sft.yaml); the
    shared ones are documented in medmo.train.stage.StageConfig."""

    trainer: str = "sft"  # the recipe kind (medmo train dispatches on it); must be "sft"
    output_dir: str = "runs/sft"  # the run folder: checkpoints, log.jsonl, loss.png and the final model
    max_length: int | None = None  # drop (and count) samples longer than this many tokens; never cut images
    packing: bool = False  # multimodal packing (medmo.train.packing) instead of padding; max_length = row budget
    group_by_length: bool = False  # padded batches of similar length, in random order (medmo.train.grouping)
    trace_ids: bool = False  # write each batch's sample ids to sample_ids.rank*.jsonl (packing; audits sharding/resume)
    dataloader_num_workers: int = 0  # image decoding workers

    def __post_init__(self):
        super().__post_init__()
        if self.packing and not self.max_length:
            raise ValueError("packing: true needs max_length, the token budget of a packed row (e.g. 8192)")
        flash = "flash" in (self.attn_implementation or "") or self.attn_implementation == "auto"
        if self.packing and flash and self.per_device_train_batch_size != 1:
            raise ValueError("packing with flash attention (or auto, which picks it on GPUs) needs "
                             "per_device_train_batch_size: 1: the varlen kernel reads sample boundaries from one "
                             "packed row per device (sdpa takes any batch size)")
        if self.packing and self.group_by_length:
            raise ValueError("packing and group_by_length both remove padding: choose one (packing fills rows of "
                             "max_length tokens; group_by_length keeps batches of per_device_train_batch_size samples)")
        if self.trace_ids and not self.packing:
            raise ValueError("trace_ids is written by the packed collator: set packing: true as well")


# ---------------------------------------------------------------------------- data


SFT_JSON_COLUMNS = ("messages",)
LENGTHS = "lengths.json"  # the exact sample lengths packing and group_by_length measure, cached in the run folder


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

    def _encode(self, convs: list[list[dict]]) -> dict:
        return encode_for_training(self.processor, convs, self.chat_template, padding=True, padding_side="right",
                                   add_special_tokens=False)

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
        return batch


# ---------------------------------------------------------------------------- run


class CountingSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer, plus each batch's `COUNTS` added up and logged (medmo.train.callbacks.RunCounts).

    The one hook medmo needs: the counts must leave the batch before the model sees it.
    """

    def __init__(self, *args, counts: RunCounts, lengths: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.counts = counts
        self.lengths = lengths  # exact sample lengths: batches grouped by them (group_by_length)

    def _get_train_sampler(self, train_dataset=None):
        if self.lengths is None:
            return super()._get_train_sampler(train_dataset)
        from medmo.train.grouping import LengthGroupedBatches

        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return LengthGroupedBatches(self.lengths, self.args.train_batch_size, seed=seed)

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


def build_trainer(cfg: SFTConfig, run_dir: Path):
    """The SFT trainer for one stage (model loaded, modules frozen, data wired)."""
    args = trl_args(cfg, run_dir)  # before the model: under ZeRO-3 it makes from_pretrained load sharded
    with args.main_process_first(local=False, desc="training set"):  # rank 0 builds it, the others reuse it
        train_dataset, skipped = sft_dataset(cfg.data, run_dir / "dataset", cfg.max_samples, cfg.dataset_num_proc)
    if args.device.type == "cpu":
        keep_freed_memory()
    processor, model, lrs = load_for_training(cfg, run_dir if args.process_index == 0 else None)
    collator = SFTCollator(processor, max_length=cfg.max_length)
    if cfg.packing:
        from medmo.train.packing import pack_for_sft

        with args.main_process_first(local=False, desc="packing plan"):  # rank 0 measures, the others reuse
            train_dataset, collator, plan = pack_for_sft(
                train_dataset, collator, cfg.max_length, cache_file=run_dir / LENGTHS,
                trace_file=run_dir / "sample_ids.jsonl" if cfg.trace_ids else None, num_proc=cfg.dataset_num_proc)
        skipped = skipped + plan.skipped()
    lengths = None
    if cfg.group_by_length:
        with args.main_process_first(local=False, desc="sample lengths"):  # rank 0 measures, the others reuse
            lengths = group_lengths(cfg, train_dataset, processor, run_dir)
    trainer = CountingSFTTrainer(
        model=model, args=args, train_dataset=train_dataset,
        processing_class=processor, data_collator=collator,
        optimizer_cls_and_kwargs=(PerModuleAdamW, {"lrs": lrs, "weight_decay": cfg.weight_decay}),
        callbacks=[JsonlLogCallback(run_dir / "log.jsonl", stage=run_dir.name)], counts=RunCounts(skipped),
        lengths=lengths,
    )
    return trainer, collator


def group_lengths(cfg: SFTConfig, dataset, processor, run_dir: Path) -> list[int]:
    """`group_by_length`'s exact sample lengths (-1: unmeasurable), measured once and cached in the run folder."""
    from medmo.train.packing import measure_lengths

    return measure_lengths(dataset, processor, SFTCollator(processor).chat_template, cache_file=run_dir / LENGTHS,
                           num_proc=cfg.dataset_num_proc, purpose="group_by_length")


def prepare(cfg: SFTConfig, processor_from: str | None = None) -> dict:
    """Build the stage's training set and its sample lengths (packing plan or length groups) in its
    run folder, without the model.

    `medmo train RECIPE --prepare` runs this on a CPU node before GPUs are booked; the
    training run then finds both and skips straight to step 1. Returns a summary.
    `processor_from` loads the processor from another checkpoint (a pipeline's later
    stages, whose own starting model does not exist yet).
    """
    from medmo.model.load import load_processor
    from medmo.train.packing import plan_for

    run_dir = make_run_dir(cfg.output_dir, cfg)
    dataset, skipped = sft_dataset(cfg.data, run_dir / "dataset", cfg.max_samples, cfg.dataset_num_proc)
    summary = {"stage": run_dir.name, "run_dir": str(run_dir), "samples": len(dataset), "skipped": dict(skipped)}
    if not (cfg.packing or cfg.group_by_length):
        return summary
    processor = load_processor(processor_from or cfg.model, cfg.min_pixels, cfg.max_pixels)
    if cfg.packing:
        plan = plan_for(dataset, processor, cfg.max_length, chat_template=SFTCollator(processor).chat_template,
                        cache_file=run_dir / LENGTHS, num_proc=cfg.dataset_num_proc)
        summary["packing"] = plan.summary()
    else:
        measured = [n for n in group_lengths(cfg, dataset, processor, run_dir) if n >= 0]
        summary["lengths"] = {"min": min(measured, default=None), "max": max(measured, default=None),
                              "unreadable": len(dataset) - len(measured)}
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
