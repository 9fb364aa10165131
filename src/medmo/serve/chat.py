"""OpenAI chat completions for `medmo serve` (api.py routes /v1/chat/completions here).

`chat_request` turns OpenAI messages into one backend Request: text parts go through
`clean_text` (guard.py), image_url parts (data URLs only) are decoded within the request's
image budget and become `<image>` placeholders. `prompt_tokens` counts what the model
will read without processing pixels (the prompt budget is checked on it, and it is
`usage.prompt_tokens`). `stream_chat` yields server-sent events in OpenAI's chunk format
from the engine's stream; a client that leaves mid-stream abandons its request (the local
engine stops its batch at the next decoding step once no live request is left in it).

`refuse_unsupported`: OpenAI fields medmo cannot honour get a 400 naming the field instead
of being silently ignored (vLLM supports some of them; medmo does not, on any engine).
"""
from __future__ import annotations

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


# Asked for something medmo does not do; refused unless the value asks for nothing (null, false,
# [], {}, 0 for the penalties, a "text" response_format).
UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias", "response_format", "tools", "tool_choice",
               "parallel_tool_calls", "functions", "function_call", "presence_penalty", "frequency_penalty",
               "audio", "modalities", "prediction", "web_search_options", "best_of", "echo", "suffix")


def refuse_unsupported(fields: dict) -> None:
    """400 naming the first field of UNSUPPORTED that asks for something."""
    for name in UNSUPPORTED:
        value = fields.get(name)
        if value in (None, False, 0, [], {}) or (name == "response_format" and value == {"type": "text"}):
            continue
        raise BadInput(f"{name} is not supported by medmo serve (it would be ignored, so it is refused); "
                       f"remove {name} from the request")


def chat_request(messages: list[dict], budget: Budget, max_new_tokens: int, reserved: tuple[str, ...] = (),
                 draft: int | None = None):
    """OpenAI chat messages -> a backend Request: image_url parts become <image> placeholders,
    all decoded within one request `budget` (ServeConfig.image_budget()); `draft`: the engine's
    `shrink_to` (JPEGs are decoded at a DCT scale near it).
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
                images.append(decode_image(image_bytes(url, what), budget=budget, what=what, draft=draft).image)
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


async def stream_chat(app: FastAPI, req, stop: list[str] | None = None):
    """Server-sent events in OpenAI's chunk format, from the engine's stream (engines.py): tokens
    arrive as the model makes them, beside every other request."""
    engine, cfg = app.state.engine, app.state.cfg
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict, finish: str | None = None) -> str:
        return "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                                      "model": cfg.served_model_name, "choices": [{"index": 0, "delta": delta,
                                                                                  "finish_reason": finish}]}) + "\n\n"

    yield chunk({"role": "assistant", "content": ""})
    finish = "stop"
    try:
        async for piece, reason in engine.stream(req, stop):
            if piece:
                yield chunk({"content": piece})
            finish = reason or finish
    except Exception as e:  # noqa: BLE001 - headers are sent: report in-stream, keep serving
        logger.exception("streamed generation failed")
        yield "data: " + json.dumps({"error": {"message": f"generation failed: {type(e).__name__}: {e}",
                                               "type": "server_error"}}) + "\n\n"
    yield chunk({}, finish)
    yield "data: [DONE]\n\n"
