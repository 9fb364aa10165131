"""OpenAI chat completions for `medmo serve` (api.py routes /v1/chat/completions here).

`chat_request` turns OpenAI messages into one backend Request: text parts go through
`clean_text` (guard.py), image_url parts (data URLs only) are decoded within the request's
image budget and become `<image>` placeholders. `prompt_tokens` counts what the model
will read without processing pixels (the prompt budget is checked on it, and it is
`usage.prompt_tokens`). `stream_chat` yields server-sent events in OpenAI's chunk format
from a generation that runs alone on the model thread; a client that leaves mid-stream
cancels it at its next decoding step.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from fastapi import FastAPI

from medmo.imaging import Budget
from medmo.model.chat import IMAGE_TOKEN
from medmo.serve.guard import check_reserved, clean_text
from medmo.serve.inputs import BadInput, decode_image, image_bytes

logger = logging.getLogger(__name__)


def chat_request(messages: list[dict], budget: Budget, max_new_tokens: int, reserved: tuple[str, ...] = ()):
    """OpenAI chat messages -> a backend Request: image_url parts become <image> placeholders,
    all decoded within one request `budget` (ServeConfig.image_budget()).
    Text goes through `clean_text`; `reserved` are the tokenizer's special tokens, refused in text."""
    from medmo.model.generate import Request

    turns, images = [], []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in ("system", "user", "assistant"):
            raise BadInput(f"messages[{i}].role must be system, user or assistant, got {role!r}")
        if isinstance(content, str):
            parts = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            parts = content
        else:
            raise BadInput(f"messages[{i}].content must be a string or a list of parts")
        text, n_images = [], 0
        for j, part in enumerate(parts):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                text.append(clean_text(part["text"], f"messages[{i}].content[{j}].text", reserved))
            elif kind == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                what = f"messages[{i}].content[{j}].image_url"
                images.append(decode_image(image_bytes(url, what), budget=budget, what=what).image)
                text.append(IMAGE_TOKEN)
                n_images += 1
            else:
                raise BadInput(f"messages[{i}].content[{j}]: unsupported part (expected type 'text' or 'image_url')")
        content = "".join(text)
        check_reserved(content, f"messages[{i}].content (its parts joined)", reserved)
        if content.count(IMAGE_TOKEN) != n_images:
            raise BadInput(f"messages[{i}].content: text parts join into {IMAGE_TOKEN}, which stands for an image "
                           "here; put a space inside it")
        turns.append({"role": role, "content": content})
    if turns[-1]["role"] == "assistant":
        raise BadInput("the last message must not be the assistant's (nothing would be asked)")
    return Request(messages=turns, images=images, max_new_tokens=max_new_tokens)


def prompt_tokens(processor, req) -> int:
    """Tokens the model reads for `req`: the chat-templated text plus each image's placeholder
    tokens at the processor's pixel budget (counted from the image size, no pixels processed)."""
    from medmo.model.chat import to_conversation
    from medmo.model.tokens import token_count

    text = processor.apply_chat_template(to_conversation(req.messages), add_generation_prompt=True, tokenize=False)
    return token_count(processor, text, [im.size for im in req.images])


def completion(model: str, texts: list[str], finishes: list[str], usage: dict[str, int]) -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                                         "finish_reason": finish}
                                        for i, (text, finish) in enumerate(zip(texts, finishes))],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}}


async def stream_chat(app: FastAPI, req):
    """Server-sent events in OpenAI's chunk format; tokens arrive as the model makes them."""
    from transformers import TextIteratorStreamer

    from medmo.model.chat import to_conversation

    backend, cfg = app.state.backend, app.state.cfg
    streamer = TextIteratorStreamer(backend.processor.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                    timeout=600)

    def generate() -> None:
        import torch

        from medmo.model.generate import hf_sampling

        try:
            prompt = backend.processor.apply_chat_template(to_conversation(req.messages), add_generation_prompt=True,
                                                           tokenize=False)
            enc = backend.processor(text=[prompt], images=req.images or None, return_tensors="pt").to(backend.device)
            with torch.inference_mode():
                backend.model.generate(**enc, max_new_tokens=req.max_new_tokens, streamer=streamer, **hf_sampling(req))
        except Exception:
            streamer.end()  # unblock the reader; the error is raised through the job's future
            raise

    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict, finish: str | None = None) -> str:
        return "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                                      "model": cfg.model_name, "choices": [{"index": 0, "delta": delta,
                                                                           "finish_reason": finish}]}) + "\n\n"

    job = asyncio.ensure_future(app.state.batcher.run_exclusive(generate))
    try:
        yield chunk({"role": "assistant", "content": ""})
        pieces = iter(streamer)
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            if piece:
                yield chunk({"content": piece})
        try:
            await job
        except Exception as e:  # noqa: BLE001 - headers are sent: report in-stream, keep serving
            logger.exception("streamed generation failed")
            yield "data: " + json.dumps({"error": {"message": f"generation failed: {type(e).__name__}",
                                                   "type": "server_error"}}) + "\n\n"
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"
    finally:
        job.cancel()  # the client left mid-stream: generation stops at its next step (no-op when done)
