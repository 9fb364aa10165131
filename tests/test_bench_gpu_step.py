"""The CPU-checkable parts of bench/gpu_step.py: the 2B/4B/8B configs have the published sizes,
the synthetic rows label answers only, the loss is the SFT trainer's (TRL's fused LM head), its
FLOP count equals torch's FlopCounterMode on a real forward, the spec-peak table, and without
CUDA it refuses."""
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


@pytest.fixture(scope="module")
def eager_tiny(tiny_dir):
    from transformers import Qwen3VLForConditionalGeneration

    return Qwen3VLForConditionalGeneration.from_pretrained(tiny_dir, attn_implementation="eager").eval()


def test_synthetic_rows_label_answers_only(eager_tiny):
    """As the SFT collator: each sample's labels are a suffix (its answer), never the image or prompt."""
    config = eager_tiny.config
    batch, lengths, _ = gpu_step.synthetic_row(config, 1200, random.Random(0), 64, 256)
    ids, labels, start = batch["input_ids"][0], batch["labels"][0], 0
    for n in lengths:
        lab = labels[start:start + n] != -100
        first = int(lab.int().argmax())
        assert 16 <= int(lab.sum()) == n - first <= 384  # one labeled run reaching the sample's end
        assert (ids[start:start + first] == config.image_token_id).any()  # the image is in the unlabeled prompt
        start += n


def test_trainer_loss_is_the_models_loss_on_labeled_tokens(eager_tiny):
    """TRL's fused head gives the mean NLL over labeled tokens, as the model's full-logits loss does."""
    batch, _, _ = gpu_step.synthetic_row(eager_tiny.config, 1200, random.Random(1), 64, 256)
    loss = gpu_step.trainer_loss(eager_tiny)
    assert gpu_step.fused_lm_head() is not None  # the dev venv's TRL has it: the path under test
    with torch.no_grad():
        assert loss(batch).item() == pytest.approx(eager_tiny(**batch).loss.item(), rel=1e-5)


def test_flop_count_equals_flop_counter_mode(eager_tiny):
    """Eager attention makes every FLOP a visible matmul; a packed row through SDPA-masking and
    eager attention computes each row densely, so the row counts as one (non-causal) sequence.
    On CPU TRL's fused head projects every position but the last (only labeled ones on CUDA)."""
    from torch.utils.flop_counter import FlopCounterMode

    config = eager_tiny.config
    batch, lengths, patches = gpu_step.synthetic_row(config, 1200, random.Random(0), 64, 256)
    assert len(lengths) > 1 and sum(lengths) <= 1200
    loss = gpu_step.trainer_loss(eager_tiny)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        loss(batch)
    params = gpu_step.matmul_params(config)
    want = gpu_step.train_flops(config, params, [sum(lengths)], patches, causal=False, passes=1,
                                head_tokens=sum(lengths) - 1)
    assert counter.get_total_flops() == pytest.approx(want, rel=1e-6)
    # what MFU credits instead: causal attention within each sample, the head on labeled tokens, three passes
    labeled = int((batch["labels"][:, 1:] != -100).sum())
    useful = gpu_step.train_flops(config, params, lengths, patches, head_tokens=labeled)
    assert useful < 3 * want
    assert params.head > 0 and labeled < sum(lengths) - len(lengths)  # prompts and images carry no loss


# (torch.cuda.get_device_name(), --peak-tflops, expected FLOP/s) — a comment per case
PEAK_CASES = [
    ("NVIDIA H100 80GB HBM3", None, 989e12),  # H100 SXM: 1,979 TFLOPS with sparsity, dense half
    ("NVIDIA H200", None, 989e12),  # same Hopper tensor cores as H100 SXM
    ("NVIDIA H100 PCIe", None, 756e12),  # the PCIe card, not the SXM number
    ("NVIDIA A100-SXM4-80GB", None, 312e12),
    ("NVIDIA GH200 480GB", None, 989e12),  # "GH200" contains "H200": same peak either way
    ("NVIDIA GeForce RTX 4090", None, None),  # not in the table: MFU spec is n/a, never a guess
    ("NVIDIA GeForce RTX 4090", 165.2, 165.2e12),  # --peak-tflops wins
    ("NVIDIA H100 80GB HBM3", 500, 500e12),  # ... also over a known card
]


@pytest.mark.parametrize("name,override,want", PEAK_CASES)
def test_spec_peak_lookup(name, override, want):
    got = gpu_step.spec_peak(name, override)
    assert got == (None if want is None else pytest.approx(want))


def test_refuses_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the refusal path does not apply")
    assert gpu_step.main(["--sizes", "2b"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
