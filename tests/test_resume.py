"""A training stage killed with SIGKILL resumes from its last checkpoint exactly where it was.

Three runs of the same tiny recipe: a reference that runs straight through, a run killed
(SIGKILL, no clean-up) soon after a checkpoint is complete, leaving a half-written
checkpoint after it, and the same command started again, which resumes from the last
complete one. The resumed run must reach the same step count, see the same batches
from the checkpoint on (data position) and log the same loss and learning rate at every
step as the reference (optimizer, scheduler and RNG state restored).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 8


def _cmd(tiny_dir: Path, data: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "medmo", "train", str(ROOT / "recipes/tiny/stage1_sft.yaml"),
            f"model={tiny_dir}", f"data=[{data}]", f"output_dir={run_dir}", f"max_steps={MAX_STEPS}",
            "save_steps=2", "save_total_limit=null", "logging_steps=1", "per_device_train_batch_size=1",
            "packing=true", "max_length=160", "trace_ids=true", "warmup_steps=2", "resume=true"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _by_step(run_dir: Path) -> dict[int, dict]:
    """The last logged training row per step (a resumed run re-logs the steps after its checkpoint)."""
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if "loss" in r}


def _trace(run_dir: Path) -> list[list[str]]:
    return [json.loads(line)["ids"] for line in (run_dir / "sample_ids.rank0.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sigkill_then_resume_continues_exactly(tiny_dir, tmp_path):
    from medmo.data.synthetic import write_cell_set

    data = write_cell_set(tmp_path / "data", "cells", n_grounding=40, n_vqa=8, image_size=64)
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "killed"

    ref = subprocess.run(_cmd(tiny_dir, data, ref_dir), cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=900)
    assert ref.returncode == 0, ref.stderr[-3000:]

    proc = subprocess.Popen(_cmd(tiny_dir, data, run_dir), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (run_dir / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.1)
    time.sleep(0.5)  # let it start the next steps, so the kill loses work past the checkpoint
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / f"checkpoint-{MAX_STEPS}").exists(), "killed too late to test anything"
    killed_at = max(int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*")
                    if (p / "trainer_state.json").exists())
    n_trace = len(_trace(run_dir))
    # a kill during a save leaves a checkpoint without trainer_state.json (written last): make sure one exists
    partial = run_dir / f"checkpoint-{killed_at + 2}"
    partial.mkdir(exist_ok=True)
    (partial / "config.json").write_text("{}")

    again = subprocess.run(_cmd(tiny_dir, data, run_dir), cwd=ROOT, env=_env(), capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from {run_dir / f'checkpoint-{killed_at}'}" in again.stderr

    state = json.loads((run_dir / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS
    # data position: from the checkpoint on, the resumed run collates exactly the reference's batches
    assert _trace(run_dir)[n_trace:] == _trace(ref_dir)[killed_at:]
    # optimizer + scheduler state: the loss and learning-rate curves continue the reference's
    ref_log, got_log = _by_step(ref_dir), _by_step(run_dir)
    assert len({round(r["loss"], 4) for r in ref_log.values()}) > 1  # a real curve, not a constant
    assert sorted(got_log) == list(range(1, MAX_STEPS + 1))
    for step in range(killed_at + 1, MAX_STEPS + 1):
        assert got_log[step]["learning_rate"] == pytest.approx(ref_log[step]["learning_rate"], rel=1e-9)
        assert got_log[step]["loss"] == pytest.approx(ref_log[step]["loss"], rel=1e-4, abs=1e-5), step


# (checkpoint folders: step -> trainer_state.json content or None for absent, expected newest complete)
LAST_CHECKPOINT_CASES = [
    ({2: "{}", 4: None}, "checkpoint-2"),          # killed while saving step 4: fall back to step 2
    ({2: "{}", 10: "{}", 4: None}, "checkpoint-10"),  # numeric order, not string order
    ({2: "{}", 4: '{"global_st'}, "checkpoint-2"),  # trainer_state.json cut short
    ({4: None}, None),                              # nothing complete: a fresh start
    ({}, None),                                     # no checkpoint at all
]


@pytest.mark.parametrize("folders,expected", LAST_CHECKPOINT_CASES)
def test_last_checkpoint_skips_incomplete(tmp_path, folders, expected):
    from medmo.train.callbacks import last_checkpoint

    for step, state in folders.items():
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"")
        if state is not None:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    got = last_checkpoint(tmp_path)
    assert (None if got is None else Path(got).name) == expected
