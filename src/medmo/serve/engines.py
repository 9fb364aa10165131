"""What generates behind `medmo serve`'s front end: one interface, three engines.

Every endpoint (chat, streamed chat, /v1/ground|report|vqa) asks an engine for
`generate(req, stop) -> Generation` or iterates `stream(req, stop)` (text pieces, then the
finish reason); nothing else about generation is the front end's business.

- `LocalEngine` (the default, `--engine hf`): transformers in this process behind the
  DynamicBatcher (batching.py). Every request's tokens reach it from its batch's decoding
  loop (`Request.on_token`; transformers' own streamers take one sequence, medmo's row
  streamer a batch): a streamed chat is an ordinary batch member, and a request is answered
  when its own row ends (stop token, its max_tokens, a stop string), not when the batch's
  longest row does. So a long stream never stalls the requests that share its batch.
  Departure from vLLM: no continuous batching; a request that arrives while a batch runs
  waits for the next one.
- `UpstreamEngine` (`--upstream URL`): any OpenAI-compatible server (vLLM, SGLang, TGI,
  another `medmo serve`) through medmo.serve.upstream (request format: medmo.model.remote);
  images go as data URLs (JPEG stays JPEG, anything else PNG; UpstreamEngine._params) after
  the front end decoded, windowed and de-identified them.
  Concurrency, batching and streaming
  are the upstream's; a refusal (4xx) comes back with the upstream's status and message.
- `VLLMEngine` (`--engine vllm`): vLLM's AsyncLLMEngine in this process (continuous
  batching, paged KV cache) for a GPU box with vLLM installed; not run in CI.

`stop` strings: the text is cut at the first one and the finish reason is "stop". The local
engine cuts after generation (its batch runs on to the row's token budget); the upstream and
vLLM stop generating there themselves. "length" means the token budget cut the answer.
"""
from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import replace
from typing import AsyncIterator

from medmo.model.generate import Generation, Request
from medmo.serve.batching import DynamicBatcher


def cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """`text` up to the earliest stop string, and whether one was found."""
    hits = [i for i in (text.find(s) for s in stop or ()) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


def finished(gen: Generation, stop: list[str] | None) -> Generation:
    text, hit = cut_at_stop(gen.text, stop)
    return replace(gen, text=text, finish_reason="stop" if hit else gen.finish_reason or "stop")


class LocalEngine:
    """transformers in-process (medmo.model.generate.HFBackend) behind the dynamic batcher."""

    shrink_to = None  # images reach the processor whole: it resizes them as evaluation does

    def __init__(self, backend, max_batch_size: int, max_wait_ms: float):
        self.backend, self.processor = backend, backend.processor
        self.batcher = DynamicBatcher(backend.generations, max_batch_size, max_wait_ms).start()
        if hasattr(backend, "model"):  # a decoding step of an abandoned batch raises batching.Cancelled
            backend.model.register_forward_pre_hook(lambda _module, _args: self.batcher.check_cancelled())
        self.context = context_of(getattr(getattr(backend, "model", None), "config", None))
        self.reserved = tuple(backend.processor.tokenizer.all_special_tokens)

    def stats(self) -> dict:
        b = self.batcher
        return {"batches": b.batches, "requests": b.requests, "abandoned": b.abandoned}

    async def generate(self, req: Request, stop: list[str] | None = None) -> Generation:
        """The answer as soon as the request's own row has ended, not when its whole batch has."""
        pieces, finish, tokens = [], None, None
        async for piece, finish, tokens in self._rows(req, stop):
            pieces.append(piece)
        return Generation("".join(pieces).strip(), finish_reason=finish, tokens=tokens)

    async def stream(self, req: Request, stop: list[str] | None = None) -> AsyncIterator[tuple[str, str | None]]:
        """Pieces of text as the batch decodes the request's row; the last item is (piece, finish)."""
        async for piece, finish, _tokens in self._rows(req, stop):
            yield piece, finish

    async def _rows(self, req: Request, stop: list[str] | None):
        """(piece, finish, tokens) items of the request's row: finish and tokens are None until the
        last item, which comes when the row has its stop token, its token limit or a stop string.
        The batch may decode on for longer rows; this request is answered already."""
        loop = asyncio.get_running_loop()
        tokens: asyncio.Queue[int] = asyncio.Queue()
        job = asyncio.ensure_future(self.batcher.submit(
            replace(req, on_token=lambda t: loop.call_soon_threadsafe(tokens.put_nowait, t))))
        job.add_done_callback(lambda f: f.cancelled() or f.exception())  # answered early: its outcome is read here
        ends, limit = set(self.backend.stop_ids()), req.max_new_tokens or self.backend.max_new_tokens
        hold = max((len(s) for s in stop or ()), default=1) - 1  # a stop string may be forming at the end
        ids: list[int] = []
        sent, text, finish, hit, done = "", "", None, False, False
        try:
            while finish is None:
                if tokens.empty():
                    if job.done():
                        break
                    getter = asyncio.ensure_future(tokens.get())
                    await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        continue
                    token = getter.result()
                else:
                    token = tokens.get_nowait()
                if token < 0:  # an attempt starts (again, after a failed batch)
                    ids.clear()
                    continue
                if token in ends or len(ids) >= limit:
                    finish = "stop" if token in ends else "length"
                    break
                ids.append(token)
                text, hit = cut_at_stop(self.processor.tokenizer.decode(ids, skip_special_tokens=True).lstrip(), stop)
                if hit:
                    finish = "stop"
                    break
                safe = len(text) - hold - text.endswith("\ufffd")  # a stop string or a character may be forming
                if safe > len(sent):
                    yield text[len(sent):safe], None, None
                    sent = text[:safe]
            if finish is None:  # the batch ended before this row's end reached us: its own answer
                gen = finished(job.result(), stop)
                text, finish = gen.text, gen.finish_reason
            elif not hit:
                text = text.rstrip()
            rest = text[len(sent):] if text.startswith(sent) else ""
            done = True
            yield rest, finish, len(ids)
        finally:
            if not done:
                job.cancel()  # the client left: the request is abandoned (its batch stops once all are)

    async def close(self) -> None:
        await asyncio.to_thread(self.batcher.close)


class UpstreamEngine:
    """An OpenAI-compatible server does the generating; `model` is its name for the model.

    `shrink_to` (ServeConfig.max_pixels): larger images shrink to it before they are sent, and
    the front end decodes JPEGs at a DCT scale near it (medmo.imaging.decode's `draft`).
    `tokenizer`: a checkpoint of the upstream's model, whose processor, special tokens and
    context the front end then checks prompts against; without it the upstream checks them."""

    def __init__(self, base_url: str, model: str, api_key: str | None, max_new_tokens: int, timeout: float,
                 max_connections: int, max_pixels: int | None = None, tokenizer: str | None = None):
        from medmo.serve.upstream import OpenAIChat

        self.client = OpenAIChat(base_url, api_key, timeout=timeout, max_connections=max_connections)
        self.model, self.max_new_tokens, self.shrink_to = model, max_new_tokens, max_pixels
        self.base_url = self.client.base_url
        self.processor, self.context, self.reserved = None, None, ()
        if tokenizer:
            from medmo.model.load import load_processor

            self.processor = load_processor(tokenizer, max_pixels=max_pixels)
            self.reserved = tuple(self.processor.tokenizer.all_special_tokens)
            self.context = _context(tokenizer)

    def stats(self) -> dict:
        return {"upstream": self.base_url}

    def _params(self, req: Request, stop: list[str] | None) -> dict:
        """The upstream's request. Images over `shrink_to` shrink to it first (the upstream's
        processor would: sending them whole costs coding on both sides and bandwidth); an image
        that came as a JPEG travels as a JPEG (quality 95), any other as a PNG (lossless)."""
        from medmo.imaging import fit_pixels
        from medmo.model.remote import chat_params, image_data_url

        def encode(im) -> str:
            lossy = im.format == "JPEG"  # decoded from a JPEG, not converted (medmo.imaging keeps RGB JPEGs as read)
            if self.shrink_to and im.width * im.height > self.shrink_to:
                im = fit_pixels(im, self.shrink_to, reducing_gap=2.0)
            return image_data_url(im, lossy=lossy)

        return chat_params(req, self.model, self.max_new_tokens, temperature=0.0, stop=stop, encode=encode)

    async def generate(self, req: Request, stop: list[str] | None = None) -> Generation:
        from medmo.model.remote import generation_from

        params = await asyncio.to_thread(self._params, req, stop)  # image coding off the event loop
        return finished(generation_from(await self.client.complete(params)), stop)

    async def stream(self, req: Request, stop: list[str] | None = None) -> AsyncIterator[tuple[str, str | None]]:
        params = await asyncio.to_thread(self._params, req, stop)
        finish = None
        async for chunk in self.client.stream(params):
            for choice in chunk.get("choices") or ():
                piece = (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
                if piece:
                    yield piece, None
        yield "", finish or "stop"

    async def close(self) -> None:
        await self.client.aclose()


class VLLMEngine:
    """vLLM's AsyncLLMEngine in this process (GPU); the prompt is the checkpoint's chat template."""

    shrink_to = None  # vLLM's processor resizes

    def __init__(self, model: str, dtype: str, max_new_tokens: int, max_pixels: int | None, max_images: int = 8):
        try:
            from vllm import AsyncEngineArgs, AsyncLLMEngine, SamplingParams
        except ImportError as e:
            raise ValueError("--engine vllm needs vLLM on a GPU machine, installed in an environment of its own "
                             "(README, Install); or serve with the default --engine hf, or put medmo in front of a "
                             "running vLLM server with --upstream URL") from e
        from medmo.model.load import load_processor

        self.processor = load_processor(model, max_pixels=max_pixels)
        self.reserved = tuple(self.processor.tokenizer.all_special_tokens)
        self.max_new_tokens, self._params = max_new_tokens, SamplingParams
        self.engine = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(
            model=model, dtype=dtype, limit_mm_per_prompt={"image": max_images}))
        self.context = self.engine.engine_args.max_model_len if hasattr(self.engine, "engine_args") else None

    def stats(self) -> dict:
        return {"engine": "vllm"}

    async def _outputs(self, req: Request, stop: list[str] | None):
        from medmo.model.chat import to_conversation

        prompt = self.processor.apply_chat_template(to_conversation(req.messages), add_generation_prompt=True,
                                                    tokenize=False)
        inputs = {"prompt": prompt, **({"multi_modal_data": {"image": list(req.images)}} if req.images else {})}
        params = self._params(temperature=req.temperature or 0.0, top_p=req.top_p or 1.0, seed=req.seed,
                              max_tokens=req.max_new_tokens or self.max_new_tokens, stop=stop or None)
        async for out in self.engine.generate(inputs, params, request_id=uuid.uuid4().hex):
            yield out.outputs[0]

    async def generate(self, req: Request, stop: list[str] | None = None) -> Generation:
        last = None
        async for last in self._outputs(req, stop):
            pass
        if last is None:
            return Generation(error="vllm: no output")
        return Generation(last.text.strip(), finish_reason=last.finish_reason, tokens=len(last.token_ids))

    async def stream(self, req: Request, stop: list[str] | None = None) -> AsyncIterator[tuple[str, str | None]]:
        sent, finish = "", None
        async for out in self._outputs(req, stop):  # closing this generator aborts the request in vLLM
            text = out.text.lstrip()
            if len(text) > len(sent):
                yield text[len(sent):], None
                sent = text
            finish = out.finish_reason or finish
        yield "", finish or "stop"

    async def close(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown:
            shutdown()


def create_engine(cfg, backend=None):
    """The engine that generates for `cfg` (api.ServeConfig); `backend`: an HF-style backend to batch.
    With --upstream and no --model, the upstream's first model names it (and the served name)."""
    if backend is not None:
        return LocalEngine(backend, cfg.max_batch_size, cfg.max_wait_ms)
    if cfg.upstream:
        key = os.environ.get("MEDMO_UPSTREAM_API_KEY") or None
        model = cfg.model or _first_model(cfg.upstream, key)
        cfg.served_model_name = cfg.served_model_name or model
        return UpstreamEngine(cfg.upstream, model, key, cfg.max_new_tokens, cfg.upstream_timeout_s,
                              cfg.max_connections, cfg.max_pixels, cfg.tokenizer)
    if cfg.engine == "vllm":
        return VLLMEngine(cfg.model, cfg.dtype, cfg.max_new_tokens, cfg.max_pixels)
    from medmo.model.generate import HFBackend

    backend = HFBackend(cfg.model, batch_size=cfg.max_batch_size, max_new_tokens=cfg.max_new_tokens,
                        dtype=cfg.dtype, device=cfg.device, max_pixels=cfg.max_pixels)
    return LocalEngine(backend, cfg.max_batch_size, cfg.max_wait_ms)


def context_of(config) -> int | None:
    """A model config's context (the text model's max_position_embeddings); None if it has none."""
    return getattr(getattr(config, "text_config", config), "max_position_embeddings", None)


def _context(checkpoint: str) -> int | None:
    """The context of a checkpoint's config.json; None without one (a tokenizer-only folder)."""
    from transformers import AutoConfig

    try:
        return context_of(AutoConfig.from_pretrained(checkpoint))
    except (OSError, ValueError):
        return None


def _first_model(url: str, key: str | None) -> str:
    """The first model id an OpenAI-compatible server lists (its name for what --upstream serves)."""
    import httpx

    try:
        r = httpx.get(url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {key}"} if key else {},
                      timeout=30)
        r.raise_for_status()
        return r.json()["data"][0]["id"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as e:
        raise ValueError(f"--upstream {url}: could not read its model from {url}/models ({type(e).__name__}: {e}); "
                         "start the upstream first, or name its model with --model") from e
