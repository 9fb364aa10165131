import torch
from PIL import Image

from medmo.model.chat import to_conversation
from medmo.model.load import check_checkpoint, load, resolve_dtype
import pytest


def test_tiny_loads_like_a_hub_checkpoint_and_runs(tiny_dir):
    model, processor = load(tiny_dir)  # through AutoModelForImageTextToText, dtype "auto"
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert model.dtype == torch.float32  # "auto" with no device: the checkpoint's own (saved in float32)
    assert model.config.vision_config.deepstack_visual_indexes == [1, 2, 3]
    assert 2e6 < sum(p.numel() for p in model.parameters()) < 2e7
    conv = to_conversation([{"role": "user", "content": "<image>Detect and localize all cells in the image."}])
    text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    assert text.count("<|image_pad|>") == 1 and text.endswith("<|im_start|>assistant\n")
    enc = processor(text=[text], images=[Image.new("RGB", (224, 224))], return_tensors="pt")
    # 224 px / 32 px per merged visual token = 7x7 image tokens
    assert int((enc["input_ids"] == processor.image_token_id).sum()) == 49
    out = model(**enc, labels=enc["input_ids"])
    assert torch.isfinite(out.loss)
    gen = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert gen.shape[1] > enc["input_ids"].shape[1]


def test_tokenizer_splits_digits_and_keeps_box_tags(tiny_dir):
    _, processor = load(tiny_dir)
    toks = processor.tokenizer.tokenize("cell <box>[[120, 45, 300, 999]]</box>")
    assert "<box>" in toks and "</box>" in toks
    assert all(len(t) == 1 for t in toks if t.isdigit())


def test_dtype_auto_is_float32_off_cuda():
    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype("auto") == "auto"  # no device (export): the checkpoint's own dtype
    assert resolve_dtype("bfloat16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="float32"):
        resolve_dtype("fp8")


def test_not_a_checkpoint_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="medmo tiny --out"):
        check_checkpoint(tmp_path)
