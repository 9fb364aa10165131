"""`medmo serve`: an OpenAI-compatible HTTP API, medical endpoints and a web page.

    medmo serve runs/demo/stage4                               # http://127.0.0.1:8000 (or --model DIR)
    medmo serve --upstream http://127.0.0.1:8001/v1 --served-model-name medmo-8b   # in front of vLLM & co.
    curl -s localhost:8000/v1/ground -d '{"image": "data:image/png;base64,...", "target": "nodule"}'
    python -c "from openai import OpenAI; c = OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='x'); ..."
    MEDMO_API_KEY=secret medmo serve --model runs/demo/stage4 --host 0.0.0.0   # /v1/ needs the key

Endpoints
- POST /v1/chat/completions  OpenAI chat: text and image_url parts (data URLs), `stream`
                             (server-sent events), `max_tokens`/`max_completion_tokens`, `stop`.
- POST /v1/ground            {image, target} -> boxes in the image's pixels and on the grid
- POST /v1/report            {image} -> answer, findings, impression
- POST /v1/vqa               {image, question} -> answer (and boxes, if it has any)
- GET  /healthz, GET /v1/models; GET / and POST /v1/preview: the web page (web.py)
Image fields take a data URL or base64 of PNG/JPEG/TIFF/DICOM/NIfTI bytes, plus optional
`window`, `slice_index` and `frame` for DICOM/NIfTI (medmo.serve.inputs).

Generation is an engine's (engines.py): in-process transformers behind `DynamicBatcher`
(batching.py; streamed chats are batch members like any other), an OpenAI-compatible
server (`--upstream URL`: vLLM, SGLang, TGI, another medmo; the front end still decodes,
windows and de-identifies images and maps boxes) or in-process vLLM (`--engine vllm`). A
client that disconnects abandons its request: it is dropped from the queue, or its
generation stops at the next decoding step (once every request of its batch is
abandoned); upstream, its connection to the upstream is closed.

Hostile input (guard.py for the HTTP layer): every input that reaches the model passes one
validation first: user text is normalised (lone surrogates -> U+FFFD, NFC), the
tokenizer's special tokens in it are refused, integers are bounded, and budgets are
checked before any generation: prompt tokens (text + image placeholders) against
`max_prompt_tokens` and the model's context, `n` x `max_tokens` against
`max_request_tokens`. Bodies over `max_body_mb` -> 413; images over a decoding budget
(`max_image_pixels`, `max_request_pixels`, `max_volume_voxels`, `max_decompressed_bytes`,
checked on headers before decoding) -> 413; every bad input -> 400 naming the field or budget; any unexpected error -> a
logged 500, all in OpenAI's error shape `{"error": {"message", "type", "code"}}`; the
connection stays open and batch-mates are answered. uvicorn runs with a header read
timeout (`header_timeout_s`), a body read timeout (`body_timeout_s`), a keep-alive
timeout and a connection limit (`max_connections`, beyond which requests get 503).
Departures from OpenAI's API: decoding is greedy unless a
chat asks for `temperature` > 0 (with `top_p` and `seed`; other sampling settings come
from the checkpoint's generation_config.json; the medical endpoints are always greedy);
`n` up to 16 samples that many answers (seeds seed, seed+1, ...), not with `stream`;
`usage` counts prompt tokens from the template and image sizes and completion tokens as
generated (upstream: the upstream's usage), and any `model` name is accepted (one model
is served). `finish_reason` is "length" when max_tokens cut the answer, else "stop";
`stop` strings cut the answer at the first one (on the local engine after generating).
Fields medmo cannot honour (`logprobs`, `response_format`, `tools`, ...: chat.UNSUPPORTED)
get a 400 naming the field, where vLLM would serve them. With `--upstream`, prompt-token
budgets and the special-token check are the upstream's unless `--tokenizer DIR` gives the
front end the model's processor (as vLLM's `--tokenizer`); then they are checked here too.

Access: with `api_key` (`--api-key`, `--api-key-file PATH` to keep it out of `ps`, or
$MEDMO_API_KEY) every request but the page and /healthz, /docs and /openapi.json
included, must send `Authorization: Bearer <key>` (what OpenAI clients send for
`api_key=`; the scheme in any case), else 401; the web page asks for the key once and
keeps it in the browser. Without a key anyone who reaches the port can use the model: keep the default
loopback host, or set a key (and TLS through a proxy) when binding elsewhere.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request as HTTPRequest
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator

from medmo.infer import build_request, interpret
from medmo.model.load import Dtype
from medmo.serve.bodies import ImageBody
from medmo.serve.chat import chat_request, completion, prompt_tokens, refuse_unsupported, stream_chat
from medmo.serve.guard import (BodyLimit, ErrorShield, RequireKey, add_error_handlers, clean_text, error_response,
                               header_timeout_protocol, until_disconnect)
from medmo.imaging import Budget
from medmo.serve.inputs import BadInput, DecodedImage, decode_image, image_bytes, parse_window, request_budget

logger = logging.getLogger(__name__)


@dataclass
class ServeConfig:
    """`medmo serve` options."""

    model: str = field(default="", metadata={
        "help": "checkpoint folder or hub id (also positional: medmo serve MODEL); with --upstream, the "
                "upstream's name for its model (default: the first one it lists)"})
    upstream: str | None = field(default=None, metadata={
        "help": "generate with this OpenAI-compatible server (vLLM, SGLang, TGI, medmo), e.g. "
                "http://127.0.0.1:8001/v1; the key, if it needs one, from $MEDMO_UPSTREAM_API_KEY"})
    engine: Literal["hf", "vllm"] = field(default="hf", metadata={
        "help": "in-process generation without --upstream: hf (transformers, dynamic batching) or vllm "
                "(vLLM's async engine; a GPU box with vLLM installed)"})
    upstream_timeout_s: float = field(default=600.0, metadata={"help": "--upstream: the longest wait for an answer"})
    tokenizer: str | None = field(default=None, metadata={
        "help": "--upstream: a checkpoint folder (or hub id) of the upstream's model whose processor counts prompt "
                "tokens (--max-prompt-tokens, the context) and names the special tokens refused in text, as "
                "without --upstream; default: those checks are the upstream's"})
    host: str = field(default="127.0.0.1", metadata={
        "help": "bind address (set --api-key when it is not loopback: without a key, anyone who reaches the "
                "port may use it)"})
    api_key: str | None = field(default=None, metadata={
        "help": "require `Authorization: Bearer KEY` (default: $MEDMO_API_KEY; none: open)"})
    api_key_file: str | None = field(default=None, metadata={
        "help": "read the key from this file (keeps it out of `ps`)"})
    port: int = field(default=8000, metadata={"help": "port"})
    served_model_name: str | None = field(default=None, metadata={
        "help": "id reported by /v1/models and in answers (default: the model folder's name)",
        "aliases": ("--model-name",)})
    max_batch_size: int = field(default=16, metadata={"help": "dynamic batching: most requests per call (1 = off)"})
    max_wait_ms: float = field(default=10.0, metadata={"help": "dynamic batching: wait window for a batch"})
    max_new_tokens: int = field(default=256, metadata={"help": "default generation budget per request"})
    max_body_mb: float = field(default=20.0, metadata={"help": "larger request bodies get 413"})
    # decoding budgets per request (medmo.imaging.limits), checked on headers before decoding
    max_image_pixels: int = field(default=40_000_000, metadata={
        "help": "pixels of one decoded image (frame, slice, montage); more gets 413"})
    max_request_pixels: int = field(default=80_000_000, metadata={
        "help": "pixels of all images of one request together; more gets 413"})
    max_volume_voxels: int = field(default=134_217_728, metadata={
        "help": "voxels of a NIfTI volume, multi-frame DICOM or DICOM series (512^3); more gets 413"})
    max_decompressed_bytes: int = field(default=335_544_320, metadata={
        "help": "bytes a .nii.gz or deflated DICOM may inflate to (320 MiB); more gets 413"})
    max_prompt_tokens: int = field(default=16384, metadata={
        "help": "longer prompts (text + images) get 400; also bounded by the model's context"})
    max_request_tokens: int = field(default=8192, metadata={"help": "n x max_tokens above this gets 400"})
    header_timeout_s: float = field(default=10.0, metadata={"help": "close connections slower to send headers"})
    body_timeout_s: float = field(default=60.0, metadata={"help": "bodies slower than this get 408"})
    keep_alive_s: int = field(default=5, metadata={
        "help": "idle keep-alive connections are closed after this (uvicorn's timeout_keep_alive)"})
    max_connections: int = field(default=512, metadata={"help": "requests beyond this many connections get 503"})
    max_pixels: int | None = field(default=None, metadata={
        "help": "model input pixel budget (default: processor's); with --upstream, larger images shrink to it "
                "before they are sent"})
    dtype: Dtype = field(default="auto", metadata={"help": "weights dtype; auto: bfloat16 on GPU, float32 on CPU"})
    device: str | None = field(default=None, metadata={"help": "cpu | cuda (default: cuda when available)"})

    def __post_init__(self):
        if not self.model and not self.upstream:
            raise ValueError("serve needs a model: `medmo serve MODEL` (a checkpoint folder, e.g. from `medmo tiny "
                             "--out DIR`, or a hub id) or `--upstream URL` (an OpenAI-compatible server)")
        if self.upstream and not self.upstream.startswith(("http://", "https://")):
            raise ValueError(f"--upstream must be an http(s) URL such as http://127.0.0.1:8001/v1, got {self.upstream!r}")
        if self.max_pixels is not None and self.max_pixels < 32 * 32:
            raise ValueError(f"--max-pixels must be at least one 32x32 patch (1024), got {self.max_pixels}")
        if self.tokenizer and not self.upstream:
            raise ValueError("--tokenizer is for --upstream (the front end counts tokens with it); without "
                             "--upstream the model's own processor does")
        if self.upstream and self.engine != "hf":
            raise ValueError("--engine vllm runs vLLM in this process; with --upstream the upstream generates: "
                             "give one of them")
        limits = ("max_body_mb", "max_image_pixels", "max_request_pixels", "max_volume_voxels",
                  "max_decompressed_bytes", "max_prompt_tokens", "max_request_tokens", "header_timeout_s",
                  "body_timeout_s", "keep_alive_s", "max_connections", "upstream_timeout_s")
        bad = [f"{k}={getattr(self, k)}" for k in limits if not getattr(self, k) > 0]
        if bad:
            raise ValueError(f"serve limits must be > 0, got {', '.join(bad)}")
        if self.served_model_name is None and self.model:
            self.served_model_name = Path(self.model).name or str(self.model)
        if self.api_key_file is not None:
            if self.api_key is not None:
                raise ValueError("give the API key once: --api-key or --api-key-file, not both")
            self.api_key = _read_key(Path(self.api_key_file))
        if self.api_key is None:
            self.api_key = os.environ.get("MEDMO_API_KEY") or None

    def image_budget(self) -> Budget:
        """A fresh decoding budget for one request (all its images share it)."""
        return request_budget(self.max_image_pixels, self.max_request_pixels, self.max_volume_voxels,
                              self.max_decompressed_bytes)


def _read_key(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"--api-key-file {path} does not exist; write the key into it (one line)")
    key = path.read_text(encoding="utf-8", errors="strict").strip()
    if not key:
        raise ValueError(f"--api-key-file {path} is empty; write the key into it (one line)")
    if any(c.isspace() for c in key):
        raise ValueError(f"--api-key-file {path}: the key must be one line without spaces")
    return key


# ------------------------------------------------------------------------- request bodies
INT64 = 2**63  # seed: OpenAI's range (torch takes it, and seed + n - 1 still fits)


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
    max_tokens: int | None = Field(None, ge=1, description="n x max_tokens at most the server's max_request_tokens")
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    n: int = Field(1, ge=1, le=16, description="answers to sample (seeds seed, seed+1, ... when seed is given)")
    temperature: float | None = Field(None, ge=0, le=2, description="0 or absent: greedy; else at least 0.001")
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=-INT64, lt=INT64, description="with temperature > 0: same seed, same answer")
    stop: str | list[str] | None = Field(None, description="up to 4 strings; the answer ends before the first")

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value):
        """OpenAI's rule: a string or up to 4 strings; an empty one would cut every answer to nothing."""
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return stops or None

    @field_validator("temperature")
    @classmethod
    def _usable_temperature(cls, value):
        """A subnormal temperature turns the logits into inf/nan (a crash in sampling)."""
        if value is not None and 0 < value < 1e-3:
            raise ValueError(f"temperature must be 0 (greedy) or at least 0.001, got {value}")
        return value


# ------------------------------------------------------------------------- the app
def create_app(cfg: ServeConfig, backend=None) -> FastAPI:
    """The FastAPI app; generation by `engines.create_engine(cfg, backend)`."""
    from medmo.serve.engines import create_engine
    from medmo.serve.upstream import UpstreamError

    engine = create_engine(cfg, backend)
    reserved, context = engine.reserved, engine.context

    @asynccontextmanager
    async def lifespan(_app):
        yield
        await engine.close()

    app = FastAPI(title="medmo", lifespan=lifespan, description=__doc__.split("\n\n")[0])
    app.state.cfg, app.state.engine = cfg, engine
    if hasattr(engine, "batcher"):  # the local engine: tests and /healthz look at its batches
        app.state.backend, app.state.batcher = engine.backend, engine.batcher
    app.add_middleware(BodyLimit, max_bytes=int(cfg.max_body_mb * 1024 * 1024), timeout_s=cfg.body_timeout_s)
    if cfg.api_key:
        app.add_middleware(RequireKey, key=cfg.api_key)  # runs before any body is read
    app.add_middleware(ErrorShield)  # added last: outermost
    add_error_handlers(app)

    @app.exception_handler(UpstreamError)
    async def upstream_error(_req: HTTPRequest, exc: UpstreamError):
        logger.info("upstream answered %d: %s", exc.status, exc)
        return error_response(exc.status, str(exc), "invalid_request_error" if exc.status < 500 else "upstream_error")

    def text(value: str | None, what: str) -> str | None:
        return None if value is None else clean_text(value, what, reserved)

    def check_budget(req, n: int = 1) -> int | None:
        """400 when a request's generation or prompt is over its budget; else its prompt tokens
        (None upstream: no tokenizer here, the upstream checks its own context)."""
        new = req.max_new_tokens or cfg.max_new_tokens
        if n * new > cfg.max_request_tokens:
            raise BadInput(f"the request asks for {n} x {new} = {n * new} new tokens, over the server's budget of "
                           f"{cfg.max_request_tokens} (max_request_tokens); ask for fewer (n, max_tokens) or start "
                           "the server with a larger --max-request-tokens")
        if engine.processor is None:
            return None
        tokens = prompt_tokens(engine.processor, req)
        if tokens > cfg.max_prompt_tokens:
            raise BadInput(f"the prompt is {tokens} tokens (text and images), over the server's budget of "
                           f"{cfg.max_prompt_tokens} (max_prompt_tokens); shorten the text, send fewer or smaller "
                           "images, or start the server with a larger --max-prompt-tokens")
        if context and tokens + new > context:
            raise BadInput(f"the prompt ({tokens} tokens) plus max_tokens ({new}) is over the model's context of "
                           f"{context} tokens; shorten the prompt or ask for fewer new tokens")
        return tokens

    async def decode(body: ImageBody) -> DecodedImage:
        window = parse_window(body.window)

        def work() -> DecodedImage:  # base64 and image decoding off the event loop
            return decode_image(image_bytes(body.image), budget=cfg.image_budget(), window=window,
                                slice_index=body.slice_index, frame=body.frame, draft=engine.shrink_to)

        return await asyncio.to_thread(work)

    async def answer(http: HTTPRequest, req) -> str:
        gen = await until_disconnect(http, engine.generate(req))
        if gen.error:
            raise RuntimeError(gen.error)
        return gen.text

    async def answer_task(http: HTTPRequest, task: str, body: ImageBody, prompt: str | None,
                          target: str | None = None) -> dict:
        t0 = time.perf_counter()
        img = await decode(body)
        req = build_request(img.image, task, prompt, target, body.max_new_tokens)
        await asyncio.to_thread(check_budget, req)
        reply = await answer(http, req)
        out = interpret(task, reply, img.image.size, target)
        out["image_format"] = img.format
        logger.info("%s %dx%d %s -> %d chars, %d box(es) in %.2fs", task, *img.image.size, img.format, len(reply),
                    len(out["boxes"]), time.perf_counter() - t0)
        return out

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "model": cfg.served_model_name, **engine.stats()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": cfg.served_model_name, "object": "model", "created": 0,
                                            "owned_by": "medmo"}]}

    @app.post("/v1/ground")
    async def ground(body: GroundBody, http: HTTPRequest):
        return await answer_task(http, "ground", body, text(body.prompt, "prompt"), text(body.target, "target"))

    @app.post("/v1/vqa")
    async def vqa(body: VQABody, http: HTTPRequest):
        return await answer_task(http, "vqa", body, text(body.question, "question"))

    @app.post("/v1/report")
    async def report(body: ReportBody, http: HTTPRequest):
        return await answer_task(http, "report", body, text(body.prompt, "prompt"))

    @app.post("/v1/chat/completions")
    async def chat(body: ChatBody, http: HTTPRequest):
        refuse_unsupported(body.model_extra or {})
        if body.stream and body.n > 1:
            raise BadInput("stream: true takes n: 1 (one streamed answer per request)")
        new = body.max_completion_tokens or body.max_tokens or cfg.max_new_tokens
        if body.n * new > cfg.max_request_tokens:  # cheap: before any image is decoded
            raise BadInput(f"n x max_tokens = {body.n} x {new} is over the server's budget of {cfg.max_request_tokens} "
                           "new tokens per request (max_request_tokens); ask for fewer")
        req = await asyncio.to_thread(chat_request, body.messages, cfg.image_budget(), new, reserved,
                                      engine.shrink_to)
        req = replace(req, temperature=body.temperature, top_p=body.top_p, seed=body.seed)
        n_prompt = await asyncio.to_thread(check_budget, req, body.n)
        if body.stream:
            return StreamingResponse(stream_chat(app, req, body.stop), media_type="text/event-stream")
        reqs = [replace(req, seed=None if body.seed is None else body.seed + i) for i in range(body.n)]
        gens = await until_disconnect(http, asyncio.gather(*(engine.generate(r, body.stop) for r in reqs)))
        failed = [g.error for g in gens if g.error]
        if failed:
            raise RuntimeError(failed[0])
        completion_tokens = sum(g.tokens or 0 for g in gens)
        usage = {"prompt_tokens": n_prompt or 0, "completion_tokens": completion_tokens}
        return completion(cfg.served_model_name, [g.text for g in gens], [g.finish_reason for g in gens], usage)

    from medmo.serve.web import router

    app.include_router(router)
    return app


def run(cfg: ServeConfig) -> None:
    """Serve until interrupted (blocks)."""
    import uvicorn

    if cfg.host not in ("127.0.0.1", "localhost", "::1") and not cfg.api_key:
        logger.warning("serving on %s without an API key: anyone who reaches the port can use the model; "
                       "set --api-key or MEDMO_API_KEY", cfg.host)
    app = create_app(cfg)
    logger.info("medmo serve: %s on http://%s:%d (web page at /)%s", cfg.served_model_name, cfg.host, cfg.port,
                f", generating with {cfg.upstream}" if cfg.upstream else "")
    uvicorn.Server(server_config(app, cfg)).run()


def server_config(app: FastAPI, cfg: ServeConfig, **kwargs):
    """uvicorn's Config for `app` with the connection limits of `cfg` (kwargs: more uvicorn options)."""
    import uvicorn

    return uvicorn.Config(app, host=cfg.host, port=cfg.port, http=header_timeout_protocol(cfg.header_timeout_s),
                          timeout_keep_alive=cfg.keep_alive_s, limit_concurrency=cfg.max_connections,
                          **{"log_level": "info", **kwargs})
