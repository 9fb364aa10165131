"""Two-process data-parallel training on CPU (gloo) through the real launcher:

    accelerate launch --config_file recipes/accelerate/cpu_ddp.yaml --num_processes 2 \\
        -m medmo train recipes/tiny/stage1_sft.yaml ...

Checks that both ranks train, that they see disjoint samples (the packed collator's id
trace), and that the run folder is written once (rank 0): one log line per logged step,
one checkpoint, one final model.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_cpu_ddp_two_ranks_shard_data_and_save_once(tiny_dir, tmp_path):
    from medmo.data.synthetic import write_cell_set

    data = write_cell_set(tmp_path / "data", "cells", n_grounding=24, n_vqa=8, image_size=64)
    run_dir = tmp_path / "run"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--config_file", str(ROOT / "recipes/accelerate/cpu_ddp.yaml"),
           "--num_processes", "2", "--main_process_port", str(_free_port()),
           "-m", "medmo", "train", str(ROOT / "recipes/tiny/stage1_sft.yaml"),
           f"model={tiny_dir}", f"data=[{data}]", f"output_dir={run_dir}", "max_steps=2", "save_steps=2",
           "logging_steps=1", "per_device_train_batch_size=1", "packing=true", "max_length=160", "trace_ids=true",
           "resume=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    traces = {r: [json.loads(line) for line in (run_dir / f"sample_ids.rank{r}.jsonl").read_text().splitlines()]
              for r in (0, 1)}
    seen = {r: [i for batch in t for i in batch["ids"]] for r, t in traces.items()}
    assert seen[0] and seen[1], "both ranks must have trained"
    assert not set(seen[0]) & set(seen[1]), "ranks must see disjoint samples"
    assert len(seen[0]) == len(set(seen[0])) and len(seen[1]) == len(set(seen[1]))

    logged = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in logged if "loss" in r]
    assert steps == [1, 2]  # written by rank 0 only: no duplicated lines
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-2"]
    state = json.loads((run_dir / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert (run_dir / "config.json").exists() and list(run_dir.glob("*.safetensors"))
