"""What every medmo training stage shares: the log.jsonl callback, curve plots, resume lookup,
and the Trainer arguments common to SFT and GRPO.

`JsonlLogCallback` appends each Trainer log (loss, lr, rewards, ...) as one JSON line to
runs/<name>/log.jsonl on the main process only; a resumed run appends to the same file,
so its curve continues. When training begins, the file is healed (a line torn by a kill is
cut off, medmo.data.shards.heal_jsonl) and rows past the resumed checkpoint's step are
removed, since the run computes those steps again: every step appears once. `read_log`
skips a line that is not a JSON object (with a warning) instead of failing. `plot_curve`
turns that file into a PNG.

`RunCounts` puts real token and skip counts in those rows. Collators run in dataloader
worker processes when `dataloader_num_workers` > 0, so a count kept on the collator object
never reaches the trainer; instead each batch carries what its collator counted under the
`COUNTS` key, the trainer takes it off before the forward pass (`compute_loss`) and adds it
up in the main process, then over ranks at each log.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from transformers import TrainerCallback

from medmo.data.shards import heal_jsonl

if TYPE_CHECKING:
    from medmo.train.stage import StageConfig

logger = logging.getLogger(__name__)


class JsonlLogCallback(TrainerCallback):
    """Append {"step", "epoch", **logs} to `path` on every Trainer log, main process only."""

    def __init__(self, path: str | Path, stage: str):
        self.path = Path(path)
        self.stage = stage

    def on_train_begin(self, args, state, control, **kwargs):
        """Heal the log and drop rows after the step this run starts from (they are recomputed)."""
        if not state.is_world_process_zero or not self.path.exists():
            return
        heal_jsonl(self.path)
        rows = self.path.read_bytes().splitlines(keepends=True)
        keep = [r for r in rows if _step(r) <= state.global_step]
        if len(keep) < len(rows):
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(b"".join(keep))
            os.replace(tmp, self.path)
            logger.warning("%s: removed %d row(s) logged after step %d; this run computes those steps again",
                           self.path, len(rows) - len(keep), state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"stage": self.stage, "step": state.global_step, "epoch": state.epoch}
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str)) and k != "epoch"})
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


COUNTS = "medmo_counts"  # batch key: {"tokens": non-pad input tokens, "skipped": {reason: n}} of that batch
_TOTALS = ("num_tokens", "num_trained_tokens")


class RunCounts:
    """A stage's real token and skip counts: summed over micro-batches and ranks, cumulative over resumes.

    Logged keys: `num_tokens` (non-pad input tokens; replaces TRL's, which counts rows of a
    packed batch, whose position ids are [4, B, L]), `num_trained_tokens` (labels != -100:
    assistant tokens), `tokens_per_step` / `trained_tokens_per_step` (means over the optimizer
    steps since the previous log, all ranks), and `skipped/<reason>`: samples dropped while
    building the set or the packing plan (`skipped_before`) plus those the collators dropped in
    the batches trained. Totals continue from the last logged row of a resumed checkpoint.
    """

    def __init__(self, skipped_before: Counter | dict | None = None):
        self.initial = Counter({f"skipped/{k}": n for k, n in (skipped_before or {}).items() if n})
        self.pending: Counter = Counter()  # this rank, since the previous log
        self.total: Counter | None = None  # all ranks; set at the first log
        self.last_step = 0

    def add(self, counts: dict, labels) -> None:
        """One micro-batch: the collator's counts and the labels the loss is computed on."""
        self.pending["num_tokens"] += int(counts["tokens"])
        self.pending["num_trained_tokens"] += int((labels != -100).sum())
        self.pending.update({f"skipped/{k}": n for k, n in counts.get("skipped", {}).items()})

    def logs(self, state, gather: Callable[[list], list]) -> dict:
        """What to log at this step; `gather` collects one object per rank (accelerate's gather_object)."""
        if self.total is None:
            last = next((r for r in reversed(state.log_history) if "num_tokens" in r), None)
            kept = {k: v for k, v in (last or {}).items() if k in _TOTALS or k.startswith("skipped/")}
            self.total = Counter(kept) if last else Counter(self.initial)
            self.last_step = last["step"] if last else 0
        new = sum((Counter(c) for c in gather([dict(self.pending)])), Counter())
        self.pending.clear()
        self.total.update(new)
        row = {k: self.total[k] for k in _TOTALS} | {k: v for k, v in self.total.items() if k.startswith("skipped/")}
        steps = state.global_step - self.last_step
        if steps > 0:
            row["tokens_per_step"] = new["num_tokens"] / steps
            row["trained_tokens_per_step"] = new["num_trained_tokens"] / steps
        self.last_step = state.global_step
        return row

    def skipped(self) -> dict[str, int]:
        """Skips by reason so far on this rank's view (all ranks up to the last log)."""
        total = (self.total if self.total is not None else self.initial) + self.pending
        return {k.removeprefix("skipped/"): n for k, n in total.items() if k.startswith("skipped/")}


def _step(line: bytes) -> float:
    """A log row's step; a row that cannot be read counts as step 0 (kept, skipped by read_log)."""
    try:
        step = json.loads(line).get("step", 0)
    except (ValueError, AttributeError):
        return 0
    return step if isinstance(step, (int, float)) else 0


def read_log(path: str | Path) -> list[dict]:
    """The rows of log.jsonl; a line that is not a JSON object (torn by a kill) is skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    rows, bad = [], 0
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    if bad:
        logger.warning("%s: %d unreadable line(s) skipped (a write cut short by a kill?)", path, bad)
    return rows


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


def common_trainer_args(cfg: StageConfig, run_dir: Path) -> dict:
    """The TRL/Trainer arguments SFT and GRPO stages share (fields of their base, StageConfig)."""
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
