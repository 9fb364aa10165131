"""A training stage killed with SIGKILL resumes from its last checkpoint exactly where it was.

Three runs of the same tiny recipe: a reference that runs straight through, a run killed
(SIGKILL, no clean-up) once a checkpoint is complete and the next step logged, leaving a half-written
checkpoint after it, and the same command started again, which resumes from the last
complete one. The resumed run must reach the same step count, see the same batches
from the checkpoint on (data position) and log the same loss and learning rate at every
step as the reference (optimizer, scheduler and RNG state restored), each step once in a
log.jsonl whose torn last line was healed. Below: the healing itself, fast.
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
    """The logged training row per step; each step appears once (a resumed run drops the rows
    after its checkpoint before computing those steps again), and every line is whole JSON."""
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert len(steps) == len(set(steps)), steps
    return {r["step"]: r for r in rows if "loss" in r}


def _logged_steps(run_dir: Path) -> set[int]:
    """Steps with a training row in log.jsonl so far (a line being written is skipped)."""
    path, steps = run_dir / "log.jsonl", set()
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in row:
            steps.add(row["step"])
    return steps


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
    # kill once checkpoint 2 is complete AND step 3 is logged, so the kill loses work past the
    # checkpoint: a condition, not a sleep (a fixed 0.5 s let a faster machine finish all 8 steps)
    deadline = time.time() + 600
    while not ((run_dir / "checkpoint-2" / "trainer_state.json").exists() and _logged_steps(run_dir) >= {3}):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
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
    with (run_dir / "log.jsonl").open("a") as f:  # and a kill while logging leaves a torn line
        f.write('{"stage": "killed", "step": 99, "lo')

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


# ------------------------------------------------------------- torn JSONL logs are healed

# (file bytes, bytes heal_jsonl keeps): a torn last line is cut back to the last newline
HEAL_CASES = [
    (b'{"a": 1}\n{"a": 2}\n', b'{"a": 1}\n{"a": 2}\n'),     # whole: untouched
    (b'{"a": 1}\n{"a": 2', b'{"a": 1}\n'),                    # torn mid-record
    (b'{"a": 1}\n{"t": "\xc3', b'{"a": 1}\n'),                # torn inside a UTF-8 character
    (b'{"a": 1, "b"', b""),                                   # a single torn line: nothing survives
    (b"", b""),                                               # empty file
    (b'{"a": 1}\n' + b"x" * 200_000, b'{"a": 1}\n'),          # a tail longer than one read block
]


@pytest.mark.parametrize("data,kept", HEAL_CASES)
def test_heal_jsonl_cuts_back_to_the_last_complete_line(tmp_path, caplog, data, kept):
    from medmo.data.shards import heal_jsonl

    path = tmp_path / "log.jsonl"
    path.write_bytes(data)
    assert heal_jsonl(path) == len(data) - len(kept)
    assert path.read_bytes() == kept
    assert (f"({len(data) - len(kept)} bytes)" in caplog.text) == (len(data) > len(kept))
    assert heal_jsonl(tmp_path / "absent.jsonl") == 0


class _State:
    def __init__(self, step):
        self.global_step, self.epoch, self.is_world_process_zero = step, 0.0, True


def test_train_log_heals_and_drops_the_steps_a_resumed_run_recomputes(tmp_path):
    from medmo.train.callbacks import JsonlLogCallback, read_log

    path = tmp_path / "log.jsonl"
    rows = [{"stage": "s", "step": s, "loss": 1.0 / s} for s in range(1, 7)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"stage": "s", "step": 7, "lo')  # killed mid-write
    assert [r["step"] for r in read_log(path)] == [1, 2, 3, 4, 5, 6]  # the torn line does not fail the reader
    cb = JsonlLogCallback(path, "s")
    cb.on_train_begin(None, _State(4), None)  # resumed from checkpoint-4: steps 5, 6 and 7 run again
    for step in (5, 6, 7):
        cb.on_log(None, _State(step), None, logs={"loss": 0.5})
    lines = path.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # no garbage, nothing merged into a torn line
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == [1, 2, 3, 4, 5, 6, 7]  # every step once; 5 and 6 are the recomputed ones
    assert [r["loss"] for r in read_log(path)][4:] == [0.5, 0.5, 0.5]


def test_read_log_skips_unreadable_lines(tmp_path, caplog):
    from medmo.train.callbacks import read_log

    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"step": 1}\n[1, 2]\n\xff\xfe\n{"step": 2}\n{"st')
    assert read_log(path) == [{"step": 1}, {"step": 2}]
    assert "3 unreadable line(s)" in caplog.text


def test_resumed_eval_heals_a_torn_samples_file(tmp_path):
    from medmo.eval.runner import evaluate_records

    class Echo:
        def __init__(self):
            self.requests = 0

        def generate(self, requests):
            self.requests += len(requests)
            return ["yes"] * len(requests)

    rows = [{"id": f"q{i}", "source": "t", "split": "test", "task": "vqa", "images": [],
             "messages": [{"role": "user", "content": f"Is finding {i} present?"}],
             "answer": {"text": "yes", "closed": True}} for i in range(5)]
    evaluate_records(Echo(), rows, tmp_path / "run", batch_size=2)
    log = tmp_path / "run" / "samples.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])  # killed while writing the third sample
    backend = Echo()
    res = evaluate_records(backend, rows, tmp_path / "run", batch_size=2)
    assert backend.requests == 3 and res["n"] == 5 and res["accuracy"] == 1.0
    healed = [json.loads(line) for line in log.read_text().splitlines()]  # every line is whole JSON
    assert sorted(s["id"] for s in healed) == [f"q{i}" for i in range(5)]  # the right count, no duplicate


def test_eval_reads_hostile_record_lines_and_logs_every_sample(tmp_path):
    from medmo.eval.runner import evaluate_records
    from medmo.eval.samples import read_record_rows

    class Echo:
        def generate(self, requests):
            return ["yes"] * len(requests)

    def vqa(i, question):
        return {"id": f"q{i}", "source": "t", "split": "test", "task": "vqa", "images": [],
                "messages": [{"role": "user", "content": question}], "answer": {"text": "yes", "closed": True}}

    path = tmp_path / "r.jsonl"
    path.write_bytes(json.dumps(vqa(0, "plain?")).encode() + b"\n"
                     + json.dumps(vqa(1, "line\u2028separator?"), ensure_ascii=False).encode() + b"\n"
                     + b'{"id": "q2", "bad": "\xff"}\n'                               # not UTF-8
                     + json.dumps(vqa(3, "lone \ud800 surrogate?")).encode() + b"\n")  # a \ud800 escape
    rows = read_record_rows(path)
    assert [r["id"] for r in rows] == ["q0", "q1", "r.jsonl:3", "q3"]
    res = evaluate_records(Echo(), rows, tmp_path / "run")
    assert res["n_failed"] == 1 and res["failures"] == {"malformed_row": 1} and res["accuracy"] == 1.0
    lines = (tmp_path / "run" / "samples.jsonl").read_bytes().decode("utf-8").split("\n")  # not splitlines: U+2028
    assert sorted(json.loads(x)["id"] for x in lines if x.strip()) == ["q0", "q1", "q3", "r.jsonl:3"]
