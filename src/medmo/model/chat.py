"""Unified-record messages -> the chat format every family's processor expects.

Records carry `<image>` placeholders in their text (DESIGN.md); each processor's own chat
template (Qwen3-VL, Qwen2.5-VL, InternVL, Gemma 3, LLaVA-OneVision: medmo.model.load)
wants content lists with {"type": "image"} entries and renders them as its family's
image marker. `to_conversation` turns one
into the other; images themselves are opened by `medmo.imaging.open_image` and passed to
the processor separately, in placeholder order.
"""
from __future__ import annotations

# The placeholder a record's text holds per image (DESIGN.md); defined here, where it is
# turned into vision tokens, and re-exported by medmo.data.schema.
IMAGE_TOKEN = "<image>"


def to_conversation(messages: list[dict], system: str | None = None) -> list[dict]:
    """[{"role", "content": str with <image>}] -> [{"role", "content": [parts]}]."""
    conv: list[dict] = []
    if system:
        conv.append({"role": "system", "content": [{"type": "text", "text": system}]})
    for m in messages:
        parts: list[dict] = []
        chunks = m["content"].split(IMAGE_TOKEN)
        for i, chunk in enumerate(chunks):
            if i > 0:
                parts.append({"type": "image"})
            if chunk:
                parts.append({"type": "text", "text": chunk})
        conv.append({"role": m["role"], "content": parts})
    return conv


def prompt_messages(messages: list[dict]) -> list[dict]:
    """The messages up to (not including) the first assistant turn: what a model is asked."""
    out = []
    for m in messages:
        if m["role"] == "assistant":
            break
        out.append(m)
    return out


def encode_for_training(processor, conversations, chat_template: str | None = None, **processor_kwargs) -> dict:
    """Tokenize conversations (one, or a batch) with images for training: input ids, the
    processor's vision inputs and `assistant_masks` (1 on the tokens of assistant turns, from
    the template's generation marks), as torch tensors.

    The processor is asked for numpy and the tensors are made here: with torch tensors,
    transformers' assistant-mask alignment iterates every token's offsets as a tensor, which
    was half of the SFT collator's time (26 ms a batch of 16 against 13.6; bench/RESULTS.md).
    """
    import torch

    out = processor.apply_chat_template(conversations, chat_template=chat_template, tokenize=True, return_dict=True,
                                        return_tensors="np", return_assistant_tokens_mask=True,
                                        processor_kwargs=processor_kwargs)
    return {k: torch.as_tensor(v) for k, v in out.items()}
