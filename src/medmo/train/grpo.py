"""Stage 4 of MedMO: GRPO with verifiable rewards, on TRL's GRPOTrainer.

    medmo train recipes/tiny/stage4_grpo.yaml                      # CPU: HF generation
    medmo train recipes/tiny/stage4_grpo.yaml rewards.giou=1.0 rewards.format=0.5 beta=0.1
    accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml \\
        -m medmo train recipes/medmo-8b/stage4_grpo.yaml use_vllm=true   # GPUs: vLLM colocate

For each prompt the policy samples `num_generations` answers; each answer is scored by
the weighted reward terms of medmo.train.rewards (`rewards: {giou: 1.0, format: 0.1}`);
advantages are rewards normalized within each prompt's group. The dataset is unified
records: grounding (box GIoU, labels), closed VQA and MCQ (accuracy), reports
(factuality); the `task`, `answer`, `image_size`, `source` and `modality` columns reach
the rewards (source and modality decide whether a report is a chest radiograph's).
`reward_iou_threshold` (0.5, as VLM-R1) is the IoU a predicted box needs before the box
terms pay anything for it. `reasoning: true` appends medmo.model.prompts.REASONING to
every prompt (at read time, so a cached training set serves both) and adds the
`think_format` term; every term reads the answer after the think block either way.
Records are streamed into a memory-mapped Arrow file in the run folder (medmo.train.data)
and images are opened when a batch reads them.

Logged to log.jsonl every `logging_steps`: each term's mean (`rewards/<term>_reward/mean`),
the weighted `reward`, completion lengths (`completions/mean_length`, clipped ratio),
predicted, true and matched box counts of the grounding samples (`boxes/predicted`,
`boxes/true`, `boxes/matched`, logged by the box terms through TRL's `log_metric`), the
fraction of groups whose rewards are all equal (`frac_reward_zero_std`: they teach
nothing), and the KL to the reference. reward.png is drawn at the end, one panel each for
the rewards, the box counts and the completion length, so box spam or a length blow-up
shows as it happens.

How this departs from the paper's description and from plain GRPO:
1. `beta` (KL to the starting model) is 0.04 by default, not TRL's 0. It guards against
   box-spam reward hacking: with nothing anchoring it, a policy can drift toward sprays
   of boxes, some of which always overlap something. The box terms already pay nothing
   for a box under the IoU threshold and divide by max(#pred, #gt), so spam does not pay;
   the KL term also keeps answers close to the supervised format while the boxes improve.
2. TRL's default loss aggregation ("dapo": token-level, no length bias) and group
   reward scaling are kept; MedMO does not say which variant it used.
3. On CPU completions come from HF `generate`; on GPUs set `use_vllm: true` (vLLM in
   colocate mode shares the training GPUs; `vllm_gpu_memory_utilization` bounds it).
4. Only the LLM trains by default (the vision tower and merger are frozen), as the
   rewards judge text.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from medmo.config import make_run_dir
from medmo.data.schema import Record
from medmo.train.callbacks import JsonlLogCallback, common_trainer_args, last_checkpoint, read_log
from medmo.train.data import build_dataset, decoder, image_paths
from medmo.train.rewards import REWARDS, build_rewards
from medmo.train.stage import PerModuleAdamW, StageConfig, keep_freed_memory, load_for_training, save_final

logger = logging.getLogger(__name__)


@dataclass
class GRPOConfig(StageConfig):
    """Stage 4. Every field is a recipe key (recipes/*/stage4_grpo.yaml); the shared ones are
    documented in medmo.train.stage.StageConfig, and those whose default differs are restated here."""

    trainer: str = "grpo"  # the recipe kind (medmo train dispatches on it); must be "grpo"
    output_dir: str = "runs/grpo"  # the run folder
    rewards: dict[str, float] = field(default_factory=lambda: {"giou": 1.0, "format": 0.1})  # term -> weight
    reward_iou_threshold: float = 0.5  # IoU a predicted box needs to earn box/label credit (VLM-R1, Visual-RFT)
    reasoning: bool = False  # <think>...</think> then the answer: adds the prompt instruction and think_format
    # --- GRPO
    beta: float = 0.04  # KL to the starting model; > 0 against box-spam reward hacking (see the docstring)
    num_generations: int = 8  # answers sampled per prompt (the group)
    max_completion_length: int = 128  # tokens per answer
    temperature: float = 1.0  # sampling temperature of the rollouts
    top_p: float = 1.0
    epsilon: float = 0.2  # PPO-style clipping of the policy ratio
    num_iterations: int = 1  # optimization passes per batch of rollouts
    loss_type: str = "dapo"  # TRL's loss aggregation: grpo, dr_grpo, dapo, bnpo, ...
    scale_rewards: str = "group"  # normalize advantages by the group's std ("group"), the batch's, or "none"
    # --- trainable modules and schedule: only the LLM, slower and constant (the rewards judge text)
    train_merger: bool = False
    learning_rate: float = 1e-6
    per_device_train_batch_size: int = 8  # completions per device per step; a multiple of num_generations overall
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0.0
    # --- generation backend
    use_vllm: bool = False  # GPUs: vLLM rollouts
    vllm_mode: str = "colocate"  # "colocate" (same GPUs) or "server" (`trl vllm-serve` elsewhere)
    vllm_gpu_memory_utilization: float = 0.3  # share of each GPU vLLM may take in colocate mode
    vllm_tensor_parallel_size: int = 1
    # --- checkpoints and logs
    save_steps: int = 200
    logging_steps: int = 5

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.rewards, dict) or not self.rewards:
            raise ValueError(f"rewards: a mapping term -> weight; terms: {', '.join(REWARDS.names())}")
        for name in self.rewards:
            REWARDS.get(name)  # unknown term -> "did you mean"
        if not 0.0 < self.reward_iou_threshold <= 1.0:
            raise ValueError(f"reward_iou_threshold must be in (0, 1], got {self.reward_iou_threshold}; "
                             "0.5 is VLM-R1's and Visual-RFT's")
        if self.reasoning:
            self.rewards.setdefault("think_format", THINK_FORMAT_WEIGHT)
        elif "think_format" in self.rewards:
            raise ValueError("rewards.think_format rewards the <think> format, which the prompt asks for only "
                             "with `reasoning: true`; set it, or drop the term")
        if self.num_generations < 2:
            raise ValueError("num_generations must be >= 2: advantages compare answers within a group")
        if self.beta < 0:
            raise ValueError("beta must be >= 0")
        if self.vllm_mode not in ("colocate", "server"):
            raise ValueError(f"vllm_mode must be 'colocate' or 'server', got {self.vllm_mode!r}")


GRPO_JSON_COLUMNS = ("prompt", "image_size")
THINK_FORMAT_WEIGHT = 0.1  # think_format's weight when `reasoning` is on and the recipe gives none (as format's)


def grpo_row(rec: Record, base: Path) -> dict | str:
    """A record -> a GRPO row {prompt, images (paths), task, answer (JSON), image_size, source, modality},
    or why it is skipped."""
    from medmo.model.chat import prompt_messages, to_conversation

    images = image_paths(rec, base)
    if isinstance(images, str):
        return images
    if not rec.answer:
        return "no answer to reward"
    return {"id": rec.id, "prompt": to_conversation(prompt_messages(rec.messages)), "images": images,
            "task": rec.task, "answer": json.dumps(rec.answer), "image_size": rec.answer.get("image_size"),
            "source": rec.source, "modality": rec.modality}


grpo_row.version = 2  # 2: rows carry source and modality (the factuality rule); sets without them are rebuilt


def with_instruction(prompt: list[dict], instruction: str) -> list[dict]:
    """A conversational prompt with `instruction` appended to its last user turn."""
    prompt = [dict(m) for m in prompt]
    last = max(i for i, m in enumerate(prompt) if m["role"] == "user")
    prompt[last]["content"] = [*prompt[last]["content"], {"type": "text", "text": "\n" + instruction}]
    return prompt


def grpo_dataset(paths: list[str], folder: str | Path, max_samples: int | None = None, num_proc: int = 1,
                 reasoning: bool = False):
    """(memory-mapped dataset of GRPO rows, skip counts); images open as RGB PIL images on access;
    with `reasoning` each prompt asks for the think format (medmo.model.prompts.REASONING)."""
    from medmo.imaging import open_image
    from medmo.model.prompts import REASONING

    dataset, skipped = build_dataset(paths, grpo_row, folder, max_samples, json_columns=GRPO_JSON_COLUMNS,
                                     num_proc=num_proc)
    decode = decoder(GRPO_JSON_COLUMNS)

    def transform(batch: dict) -> dict:  # DICOM/NIfTI via medmo.imaging
        batch = decode(batch)
        if reasoning and "prompt" in batch:
            batch["prompt"] = [with_instruction(p, REASONING) for p in batch["prompt"]]
        if "images" in batch:
            batch["images"] = [[open_image(p) for p in paths] for paths in batch["images"]]
        return batch
    return dataset.with_transform(transform), skipped


def trl_args(cfg: GRPOConfig, run_dir: Path, reward_weights: list[float]):
    """TRL's GRPOConfig; `reward_weights` come from the same build_rewards call as the functions."""
    from trl import GRPOConfig as TRLGRPOConfig

    return TRLGRPOConfig(
        **common_trainer_args(cfg, run_dir),
        beta=cfg.beta, num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature, top_p=cfg.top_p, epsilon=cfg.epsilon, num_iterations=cfg.num_iterations,
        loss_type=cfg.loss_type, scale_rewards=cfg.scale_rewards, reward_weights=reward_weights,
        use_vllm=cfg.use_vllm, vllm_mode=cfg.vllm_mode, vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=cfg.vllm_tensor_parallel_size, log_completions=False,
    )


def build_trainer(cfg: GRPOConfig, run_dir: Path):
    from trl import GRPOTrainer

    funcs, weights = build_rewards(cfg.rewards, cfg.reward_iou_threshold)  # once: functions and weights together
    args = trl_args(cfg, run_dir, weights)
    with args.main_process_first(local=False, desc="training set"):  # rank 0 builds it, the others reuse it
        dataset, _ = grpo_dataset(cfg.data, run_dir / "dataset", cfg.max_samples, cfg.dataset_num_proc,
                                  cfg.reasoning)
    if args.device.type == "cpu":
        keep_freed_memory()
    processor, model, lrs = load_for_training(cfg, run_dir if args.process_index == 0 else None)
    trainer = GRPOTrainer(
        model=model, reward_funcs=funcs, args=args, train_dataset=dataset,
        processing_class=processor, callbacks=[JsonlLogCallback(run_dir / "log.jsonl", stage=run_dir.name)],
    )
    # GRPOTrainer does not take `optimizer_cls_and_kwargs` (SFTTrainer does); Trainer reads the
    # attribute when it creates the optimizer at train time, so per-module LRs work the same way.
    trainer.optimizer_cls_and_kwargs = (PerModuleAdamW, {"lrs": lrs, "weight_decay": cfg.weight_decay})
    return trainer


def prepare(cfg: GRPOConfig, processor_from: str | None = None) -> dict:
    """Build the stage's training set in its run folder, without the model (`medmo train --prepare`)."""
    run_dir = make_run_dir(cfg.output_dir, cfg)
    dataset, skipped = grpo_dataset(cfg.data, run_dir / "dataset", cfg.max_samples, cfg.dataset_num_proc)
    return {"stage": run_dir.name, "run_dir": str(run_dir), "prompts": len(dataset), "skipped": dict(skipped)}


def run(cfg: GRPOConfig) -> Path:
    """Train stage 4; returns the run folder (final model + processor at its root)."""
    run_dir = make_run_dir(cfg.output_dir, cfg)
    trainer = build_trainer(cfg, run_dir)
    resume_from = last_checkpoint(run_dir) if cfg.resume else None
    if resume_from:
        logger.info("resuming from %s", resume_from)
    trainer.train(resume_from_checkpoint=resume_from)
    save_final(trainer, run_dir)
    plot_rewards(run_dir / "log.jsonl", cfg.rewards, run_dir / "reward.png", title=f"{run_dir.name}: rewards")
    return run_dir


def plot_rewards(log_path: Path, rewards: dict[str, float], out_png: Path, title: str = "") -> Path | None:
    """reward.png: the weighted reward and each term's mean; predicted vs true box counts; completion length."""
    rows = read_log(log_path)
    terms = [f"rewards/{REWARDS.get(name).__name__}/mean" for name in rewards]  # TRL logs each term by function name
    panels = [("reward", ["reward", *terms]), ("boxes per answer", ["boxes/predicted", "boxes/true", "boxes/matched"]),
              ("completion tokens", ["completions/mean_length"])]
    panels = [(name, {k: [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
                      for k in keys})
              for name, keys in panels]
    panels = [(name, {k: v for k, v in series.items() if v}) for name, series in panels]
    panels = [(name, series) for name, series in panels if series]
    if not panels:
        logger.warning("%s has no reward to plot", log_path)
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(6, 2.6 * len(panels)), sharex=True, squeeze=False)
    for ax, (name, series) in zip(axes[:, 0], panels):
        for k, pts in series.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k, marker="." if len(pts) < 30 else None)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)
