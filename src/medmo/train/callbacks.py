"""What every medmo training stage shares: the log.jsonl callback, curve plots, resume lookup,
and the Trainer arguments common to SFT and GRPO.

`JsonlLogCallback` appends each Trainer log (loss, lr, rewards, ...) as one JSON line to
runs/<name>/log.jsonl on the main process only; a resumed run appends to the same file,
so its curve continues. `plot_curve` turns that file into a PNG.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class JsonlLogCallback(TrainerCallback):
    """Append {"step", "epoch", **logs} to `path` on every Trainer log, main process only."""

    def __init__(self, path: str | Path, stage: str):
        self.path = Path(path)
        self.stage = stage

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"stage": self.stage, "step": state.global_step, "epoch": state.epoch}
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str)) and k != "epoch"})
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def read_log(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curve(log_path: str | Path, keys: list[str], out_png: str | Path, title: str = "") -> Path | None:
    """Plot `keys` of log.jsonl against step; the first key that has values is required."""
    rows = read_log(log_path)
    series = {k: [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
              for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        logger.warning("%s has none of %s to plot", log_path, keys)
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k, marker="." if len(pts) < 30 else None)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)


def last_checkpoint(run_dir: str | Path) -> str | None:
    """The newest complete checkpoint-* folder in run_dir, or None (a fresh start).

    The Trainer writes trainer_state.json last, so a run killed while saving leaves a folder
    without it (or with it cut short); such a folder is skipped and the one before is used.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    steps = sorted((p for p in run_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for ckpt in steps:
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
            return str(ckpt)
        except (OSError, json.JSONDecodeError):
            logger.warning("skipping incomplete checkpoint %s (the run stopped while saving it)", ckpt)
    return None


def common_trainer_args(cfg, run_dir: Path) -> dict:
    """The TRL/Trainer arguments SFT and GRPO stages share; their config fields have the same names."""
    import torch

    return dict(
        output_dir=str(run_dir), max_steps=cfg.max_steps, num_train_epochs=cfg.num_train_epochs,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, bf16=cfg.bf16,
        gradient_checkpointing=cfg.gradient_checkpointing, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, logging_steps=cfg.logging_steps, report_to=cfg.report_to,
        remove_unused_columns=False, disable_tqdm=False, ddp_timeout=cfg.ddp_timeout,
        use_cpu=not torch.cuda.is_available(),  # gloo DDP under accelerate launch on CPU
    )
