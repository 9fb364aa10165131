"""The CPU-checkable parts of bench/gpu_step.py: the 2B/4B/8B configs have the published sizes,
the FLOP count equals torch's FlopCounterMode on a real forward, and without CUDA it refuses."""
from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location("gpu_step", Path(__file__).resolve().parents[1] / "bench/gpu_step.py")
gpu_step = sys.modules["gpu_step"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(gpu_step)

# Parameter counts shown on the Hugging Face model pages of Qwen/Qwen3-VL-{2B,4B,8B}-Instruct.
PUBLISHED = {"2b": 2.13e9, "4b": 4.44e9, "8b": 8.77e9}


@pytest.mark.parametrize("size", sorted(PUBLISHED))
def test_configs_have_the_published_sizes(size):
    config = gpu_step.qwen3_vl_config(size)
    params = gpu_step.matmul_params(config)
    assert params.total == pytest.approx(PUBLISHED[size], rel=0.005)
    assert config.vision_config.out_hidden_size == config.text_config.hidden_size  # merger feeds the LLM
    assert len(config.vision_config.deepstack_visual_indexes) == 3


def test_unknown_size_names_the_choices():
    with pytest.raises(ValueError, match="2b, 4b, 8b"):
        gpu_step.qwen3_vl_config("7b")


def test_flop_count_equals_flop_counter_mode(tiny_dir):
    """Eager attention makes every FLOP a visible matmul; a packed row through SDPA-masking and
    eager attention computes each row densely, so the row counts as one (non-causal) sequence."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import Qwen3VLForConditionalGeneration

    model = Qwen3VLForConditionalGeneration.from_pretrained(tiny_dir, attn_implementation="eager").eval()
    config = model.config
    batch, lengths, patches = gpu_step.synthetic_row(config, 1200, random.Random(0), 64, 256)
    assert len(lengths) > 1 and sum(lengths) <= 1200
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**batch)
    params = gpu_step.matmul_params(config)
    want = gpu_step.train_flops(config, params, [sum(lengths)], patches, causal=False, passes=1)
    assert counter.get_total_flops() == pytest.approx(want, rel=1e-6)
    # what MFU credits instead: causal attention within each sample, three passes
    useful = gpu_step.train_flops(config, params, lengths, patches)
    assert useful < 3 * want


def test_refuses_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the refusal path does not apply")
    assert gpu_step.main(["--sizes", "2b"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
