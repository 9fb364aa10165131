"""`medmo serve`: an OpenAI-compatible HTTP API, medical endpoints and a web page.

    medmo serve --model runs/demo/stage4                       # http://127.0.0.1:8000
    curl -s localhost:8000/v1/ground -d '{"image": "data:image/png;base64,...", "target": "nodule"}'
    python -c "from openai import OpenAI; c = OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='x'); ..."
    MEDMO_API_KEY=secret medmo serve --model runs/demo/stage4 --host 0.0.0.0   # /v1/ needs the key

Endpoints
- POST /v1/chat/completions  OpenAI chat: text and image_url parts (data URLs), `stream`
                             (server-sent events), `max_tokens`/`max_completion_tokens`.
- POST /v1/ground            {image, target} -> boxes in the image's pixels and on the grid
- POST /v1/report            {image} -> answer, findings, impression
- POST /v1/vqa               {image, question} -> answer (and boxes, if it has any)
- GET  /healthz, GET /v1/models; GET / and POST /v1/preview: the web page (web.py)
Image fields take a data URL or base64 of PNG/JPEG/TIFF/DICOM/NIfTI bytes, plus optional
`window`, `slice_index` and `frame` for DICOM/NIfTI (medmo.serve.inputs).

Concurrent requests share model calls through `DynamicBatcher` (batching.py); streamed
chats run alone between batches. Limits: bodies over `max_body_mb` -> 413; images over
`max_image_pixels` -> 400; every bad input -> 400 with a message in OpenAI's error shape,
and the server keeps serving. Departures from OpenAI's API: decoding is greedy unless a
chat asks for `temperature` > 0 (with `top_p` and `seed`; other sampling settings come
from the checkpoint's generation_config.json; the medical endpoints are always greedy);
`n` up to 16 samples that many answers (seeds seed, seed+1, ...), not with `stream`;
`usage` counts prompt tokens from the template and image sizes and completion tokens by
re-tokenizing the answer, and any `model` name is accepted (one model is served).

Access: with `api_key` (`--api-key`, or $MEDMO_API_KEY) every /v1/ request must send
`Authorization: Bearer <key>` (what OpenAI clients send for `api_key=`), else 401; the web
page asks for the key once and keeps it in the browser. /healthz and the page itself stay
open. Without a key anyone who reaches the port can use the model: keep the default
loopback host, or set a key (and TLS through a proxy) when binding elsewhere.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from medmo.data.schema import IMAGE_TOKEN
from medmo.infer import build_request, interpret
from medmo.serve.batching import DynamicBatcher
from medmo.serve.inputs import BadInput, DecodedImage, decode_image, image_bytes, parse_window

logger = logging.getLogger(__name__)


@dataclass
class ServeConfig:
    """`medmo serve` options."""

    model: str = ""  # checkpoint folder or hub id (Qwen3-VL class)
    host: str = "127.0.0.1"  # loopback by default: without api_key, anyone who reaches the port may use it
    api_key: str | None = None  # require `Authorization: Bearer <key>` on /v1/ (default: $MEDMO_API_KEY)
    port: int = 8000
    model_name: str | None = None  # id reported by /v1/models (default: the model folder's name)
    max_batch_size: int = 16  # dynamic batching: most requests per model call (1 = off)
    max_wait_ms: float = 10.0  # dynamic batching: how long the first request waits for company
    max_new_tokens: int = 256  # default generation budget per request
    max_body_mb: float = 20.0  # request bodies above this -> 413
    max_image_pixels: int = 40_000_000  # decoded images above this -> 400
    max_pixels: int | None = None  # model input budget (None: the processor's default)
    dtype: str = "float32"  # float32 | bfloat16 | float16
    device: str | None = None  # cpu | cuda (default: cuda when available)

    def __post_init__(self):
        if not self.model:
            raise ValueError("serve needs --model (a checkpoint folder, e.g. from `medmo tiny --out DIR`)")
        if self.max_body_mb <= 0 or self.max_image_pixels <= 0:
            raise ValueError("max_body_mb and max_image_pixels must be > 0")
        if self.model_name is None:
            self.model_name = Path(self.model).name or str(self.model)
        if self.api_key is None:
            self.api_key = os.environ.get("MEDMO_API_KEY") or None


# ------------------------------------------------------------------------- request bodies
class ImageBody(BaseModel):
    image: str = Field(description="data URL or base64 of PNG/JPEG/TIFF/DICOM/NIfTI bytes")
    window: str | list[float] | None = Field(None, description='DICOM/NIfTI window: preset name or [centre, width]')
    slice_index: int | None = Field(None, ge=0, description="NIfTI slice (default: middle)")
    frame: int | None = Field(None, ge=0, description="multi-frame DICOM frame / 4-D NIfTI volume")
    max_new_tokens: int | None = Field(None, ge=1, le=8192)


class GroundBody(ImageBody):
    target: str = Field(min_length=1, description="what to find, e.g. 'nodule'")
    prompt: str | None = Field(None, description="replaces the default grounding prompt")


class VQABody(ImageBody):
    question: str = Field(min_length=1)


class ReportBody(ImageBody):
    prompt: str | None = Field(None, description="replaces the default report prompt")


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI's many optional fields are accepted and ignored
    messages: list[dict[str, Any]] = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    stream: bool = False
    n: int = Field(1, ge=1, le=16, description="answers to sample (seeds seed, seed+1, ... when seed is given)")
    temperature: float | None = Field(None, ge=0, le=2, description="0 or absent: greedy")
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, description="with temperature > 0: the same seed, the same answer")


# ------------------------------------------------------------------------- the app
def create_app(cfg: ServeConfig, backend=None) -> FastAPI:
    """The FastAPI app; `backend` defaults to eval-core's HFBackend on `cfg.model`."""
    if backend is None:
        from medmo.eval.backends import HFBackend

        backend = HFBackend(cfg.model, batch_size=cfg.max_batch_size, max_new_tokens=cfg.max_new_tokens,
                            dtype=cfg.dtype, device=cfg.device, max_pixels=cfg.max_pixels)
    batcher = DynamicBatcher(backend.generate, cfg.max_batch_size, cfg.max_wait_ms).start()

    @asynccontextmanager
    async def lifespan(_app):
        yield
        batcher.close()

    app = FastAPI(title="medmo", lifespan=lifespan, description=__doc__.split("\n\n")[0])
    app.state.cfg, app.state.backend, app.state.batcher = cfg, backend, batcher
    app.add_middleware(BodyLimit, max_bytes=int(cfg.max_body_mb * 1024 * 1024))
    if cfg.api_key:
        app.add_middleware(RequireKey, key=cfg.api_key)  # added last: runs first, before any body is read
    _add_error_handlers(app)

    async def decode(body: ImageBody) -> DecodedImage:
        window = parse_window(body.window)

        def work() -> DecodedImage:  # base64 and image decoding off the event loop
            return decode_image(image_bytes(body.image), max_pixels=cfg.max_image_pixels, window=window,
                                slice_index=body.slice_index, frame=body.frame)

        return await asyncio.to_thread(work)

    async def answer_task(task: str, body: ImageBody, prompt: str | None, target: str | None = None) -> dict:
        t0 = time.perf_counter()
        img = await decode(body)
        req = build_request(img.image, task, prompt, target, body.max_new_tokens)
        text = await batcher.submit(req)
        out = interpret(task, text, img.image.size, target)
        out["image_format"] = img.format
        logger.info("%s %dx%d %s -> %d chars, %d box(es) in %.2fs", task, *img.image.size, img.format, len(text),
                    len(out["boxes"]), time.perf_counter() - t0)
        return out

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "model": cfg.model_name, "batches": batcher.batches, "requests": batcher.requests}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": cfg.model_name, "object": "model", "created": 0,
                                            "owned_by": "medmo"}]}

    @app.post("/v1/ground")
    async def ground(body: GroundBody):
        return await answer_task("ground", body, body.prompt, body.target)

    @app.post("/v1/vqa")
    async def vqa(body: VQABody):
        return await answer_task("vqa", body, body.question)

    @app.post("/v1/report")
    async def report(body: ReportBody):
        return await answer_task("report", body, body.prompt)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatBody):
        if body.stream and body.n > 1:
            raise BadInput("stream: true takes n: 1 (one streamed answer per request)")
        req = await asyncio.to_thread(chat_request, body.messages, cfg.max_image_pixels,
                                      body.max_completion_tokens or body.max_tokens or cfg.max_new_tokens)
        req = replace(req, temperature=body.temperature, top_p=body.top_p, seed=body.seed)
        if body.stream:
            return StreamingResponse(_stream_chat(app, req), media_type="text/event-stream")
        reqs = [replace(req, seed=None if body.seed is None else body.seed + i) for i in range(body.n)]
        texts = await asyncio.gather(*(batcher.submit(r) for r in reqs))  # one batch when unseeded
        counts = [len(backend.processor.tokenizer(t)["input_ids"]) if t else 0 for t in texts]
        usage = {"prompt_tokens": prompt_tokens(backend.processor, req), "completion_tokens": sum(counts)}
        finishes = ["length" if n >= req.max_new_tokens else "stop" for n in counts]
        return _completion(cfg.model_name, texts, finishes, usage)

    from medmo.serve.web import router

    app.include_router(router)
    return app


def chat_request(messages: list[dict], max_image_pixels: int, max_new_tokens: int):
    """OpenAI chat messages -> a backend Request: image_url parts become <image> placeholders."""
    from medmo.eval.backends import Request

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
        text = []
        for j, part in enumerate(parts):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                text.append(part["text"].replace(IMAGE_TOKEN, "< image >"))  # only real images are placeholders
            elif kind == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                what = f"messages[{i}].content[{j}].image_url"
                images.append(decode_image(image_bytes(url, what), max_pixels=max_image_pixels, what=what).image)
                text.append(IMAGE_TOKEN)
            else:
                raise BadInput(f"messages[{i}].content[{j}]: unsupported part (expected type 'text' or 'image_url')")
        turns.append({"role": role, "content": "".join(text)})
    if turns[-1]["role"] == "assistant":
        raise BadInput("the last message must not be the assistant's (nothing would be asked)")
    return Request(messages=turns, images=images, max_new_tokens=max_new_tokens)


def prompt_tokens(processor, req) -> int:
    """Tokens the model reads for `req`: the chat-templated text plus each image's placeholder
    tokens at the processor's pixel budget (counted from the image size, no pixels processed)."""
    from medmo.model.chat import to_conversation
    from medmo.train.packing import image_token_count

    text = processor.apply_chat_template(to_conversation(req.messages), add_generation_prompt=True, tokenize=False)
    n = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    return n + sum(image_token_count(processor, *im.size) - 1 for im in req.images)


def _completion(model: str, texts: list[str], finishes: list[str], usage: dict[str, int]) -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                                         "finish_reason": finish}
                                        for i, (text, finish) in enumerate(zip(texts, finishes))],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}}


async def _stream_chat(app: FastAPI, req):
    """Server-sent events in OpenAI's chunk format; tokens arrive as the model makes them."""
    from transformers import TextIteratorStreamer

    from medmo.model.chat import to_conversation

    backend, cfg = app.state.backend, app.state.cfg
    streamer = TextIteratorStreamer(backend.processor.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                    timeout=600)

    def generate() -> None:
        import torch

        from medmo.eval.backends import hf_sampling

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


# ------------------------------------------------------------------------- limits and errors
def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BadInput)
    async def bad_input(_req: HTTPRequest, exc: BadInput):
        logger.info("400: %s", exc)
        return _error(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_req: HTTPRequest, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            msg = "malformed JSON body: " + "; ".join(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors)
        else:
            msg = "invalid request: " + "; ".join(_where(e) + f": {e.get('msg')}" for e in errors)
        logger.info("400: %s", msg)
        return _error(400, msg)


def _where(error: dict) -> str:
    path = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    return path or "the body (a JSON object, sent with Content-Type: application/json)"


class BodyLimit:
    """ASGI middleware: bodies over `max_bytes` get 413 before any endpoint reads them."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._too_large(scope, receive, send)
            more = msg.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send):
        mb = self.max_bytes / (1024 * 1024)
        logger.info("413: body over %.0f MB on %s", mb, scope.get("path"))
        await _error(413, f"request body is over the server's cap of {mb:g} MB (max_body_mb); "
                          "send a smaller image")(scope, receive, send)


class RequireKey:
    """ASGI middleware: /v1/ requests without `Authorization: Bearer <key>` get 401."""

    def __init__(self, app, key: str):
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            sent = dict(scope["headers"]).get(b"authorization", b"")
            if not secrets.compare_digest(sent, self.expected):
                logger.info("401: %s key on %s", "wrong" if sent else "no", scope["path"])
                why = "a wrong API key was sent" if sent else "no API key was sent"
                return await _error(401, f"{why}: send the header `Authorization: Bearer <key>` with the key "
                                         "the server was started with (--api-key or MEDMO_API_KEY)",
                                    "authentication_error")(scope, receive, send)
        return await self.app(scope, receive, send)


def run(cfg: ServeConfig) -> None:
    """Serve until interrupted (blocks)."""
    import uvicorn

    if cfg.host not in ("127.0.0.1", "localhost", "::1") and not cfg.api_key:
        logger.warning("serving on %s without an API key: anyone who reaches the port can use the model; "
                       "set --api-key or MEDMO_API_KEY", cfg.host)
    app = create_app(cfg)
    logger.info("medmo serve: %s on http://%s:%d (web page at /)", cfg.model_name, cfg.host, cfg.port)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info")
