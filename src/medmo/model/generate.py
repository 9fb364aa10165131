"""In-process generation with transformers: the request and result types and the `hf` backend.

Inference (`medmo infer`), serving (`medmo serve`), the demo and evaluation all generate
through these, so they live in the model layer; medmo.eval.backends registers `HFBackend`
as "hf" beside the vLLM and OpenAI-compatible backends and re-exports these names.

`HFBackend`: the checkpoint's transformers class (AutoModelForImageTextToText: any family of
medmo.model.load; dtype "auto" = bf16 on CUDA, fp32 on CPU), true batching with LEFT padding,
greedy by default (a request may ask for temperature / top_p / seed; a batch shares one
setting), image budget bounded by min/max pixels. Requests are sorted by prompt length
before batching so a batch carries little padding; outputs come back in request order.
Qwen3-VL's 3-D rope positions are computed per row from the attention mask (transformers'
`get_rope_index` drops pad tokens), so a left-padded row gets the same positions as the row
alone, and greedy output matches one-at-a-time generation (bench/eval_batching.py checks
this on the tiny model in float32 and measures the speed-up; in bfloat16 a padded batch can
still flip a rare near-tie token, as batched inference does in any framework). The next
batch is preprocessed in a worker thread while the current one generates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from medmo.model.chat import IMAGE_TOKEN, to_conversation


@dataclass
class Request:
    """One prompt: unified-record turns (prompt only) and its images in placeholder order."""

    messages: list[dict]
    images: list[Any] = field(default_factory=list)  # PIL.Image.Image, one per <image>
    max_new_tokens: int | None = None  # None: the backend's default
    temperature: float | None = None  # None or 0: greedy (the openai backend: its own default)
    top_p: float | None = None  # nucleus sampling, with temperature > 0
    seed: int | None = None  # with temperature > 0: the same seed gives the same answer
    # called with each generated token id as it is made, -1 when an attempt starts (HFBackend;
    # `medmo serve` streams with it and answers a request as soon as its own row has ended)
    on_token: Callable[[int], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        n = sum(m["content"].count(IMAGE_TOKEN) for m in self.messages)
        if n != len(self.images):
            raise ValueError(f"request has {len(self.images)} image(s) but {n} {IMAGE_TOKEN} placeholder(s)")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def sampled(self) -> bool:
        return bool(self.temperature)


def hf_sampling(req: Request) -> dict[str, Any]:
    """transformers `generate` arguments for a request (greedy unless it asks for temperature > 0).

    Sampling settings a request does not give (top_k, ...) come from the checkpoint's
    generation_config.json, as vLLM's server does. A seed reseeds torch right before the
    call, so a seeded request runs in a batch of its own (HFBackend) to be reproducible.
    """
    if not req.sampled:
        return {"do_sample": False}
    if req.seed is not None:
        import torch

        torch.manual_seed(req.seed)
    return {"do_sample": True, "temperature": req.temperature, **({"top_p": req.top_p} if req.top_p else {})}


@dataclass(frozen=True)
class Generation:
    """What one request produced (a declared type instead of open dicts and side channels)."""

    text: str = ""
    error: str | None = None  # set when the request failed; text is then ""
    finish_reason: str | None = None  # "stop" | "length" (cut at the token budget) | None (not reported)
    tokens: int | None = None  # generated tokens, when the backend knows


class TextsMixin:
    """`generate(requests) -> list[str]` on top of `generations`: the texts alone (a failed
    request's text is ""); callers that need errors or finish reasons call `generations`."""

    def generate(self, requests: list[Request]) -> list[str]:
        return [g.text for g in self.generations(requests)]  # type: ignore[attr-defined]


def checkpoint_fingerprint(model: str | Path) -> str:
    """Identifies a checkpoint's weights (file names, sizes, mtimes) so a resumed evaluation can tell
    a retrained checkpoint in the same folder from the one it started with; hub ids are their own."""
    import hashlib

    p = Path(model)
    if not p.is_dir():
        return str(model)
    files = sorted(f for pattern in ("*.safetensors", "*.bin", "config.json") for f in p.glob(pattern))
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class HFBackend(TextsMixin):
    """Batched greedy generation with transformers; exposes `.model` and `.processor`."""

    def __init__(self, model: str | Path, batch_size: int = 8, max_new_tokens: int = 256, dtype: str = "auto",
                 device: str | None = None, min_pixels: int | None = None, max_pixels: int | None = None,
                 attn_implementation: str | None = None):
        from medmo.model.load import load_model, load_processor

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name = str(model)
        self.fingerprint = checkpoint_fingerprint(model)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.device = device or _default_device()
        self.processor = load_processor(model, min_pixels=min_pixels, max_pixels=max_pixels)
        self.processor.tokenizer.padding_side = "left"
        self.model = load_model(model, dtype=dtype, attn_implementation=attn_implementation,
                                device=self.device).to(self.device).eval()

    def _prompt(self, req: Request) -> str:
        return self.processor.apply_chat_template(to_conversation(req.messages), add_generation_prompt=True,
                                                  tokenize=False)

    def generations(self, requests: list[Request]) -> list[Generation]:
        from concurrent.futures import ThreadPoolExecutor

        prompts = [self._prompt(r) for r in requests]
        # Long prompts (and images) together: padding stays small within a batch. A batch shares
        # one decoding setting; a seeded sampled request runs alone (its seed, its answer).
        cost = [len(p) + sum(im.width * im.height for im in r.images) / 1024 for p, r in zip(prompts, requests)]

        def setting(i: int) -> tuple:
            r = requests[i]
            return (r.temperature, r.top_p or 1.0, i if r.seed is not None else -1) if r.sampled else (0.0, 1.0, -1)

        order = sorted(range(len(requests)), key=lambda i: (setting(i), -cost[i]))
        batches: list[list[int]] = []
        for i in order:
            if not batches or len(batches[-1]) == self.batch_size or setting(batches[-1][0]) != setting(i):
                batches.append([])
            batches[-1].append(i)
        out: list[Generation] = [Generation()] * len(requests)
        # The processor (image resize, patchify) of batch k+1 runs in a worker thread while batch k
        # generates: torch releases the GIL, so preprocessing no longer adds to generation time.
        def encode(idx: list[int]):
            # one list per prompt: Gemma 3 and LLaVA-OneVision pair images with prompts this way; Qwen flattens
            images = [requests[i].images for i in idx] if any(requests[i].images for i in idx) else None
            return self.processor(text=[prompts[i] for i in idx], images=images, return_tensors="pt",
                                  padding=True)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(encode, batches[0]) if batches else None
            for k, idx in enumerate(batches):
                enc = pending.result()
                if k + 1 < len(batches):
                    pending = pool.submit(encode, batches[k + 1])
                for i, gen in zip(idx, self._generate_batch(enc, [requests[i] for i in idx])):
                    out[i] = gen
        return out

    def stop_ids(self) -> list[int]:
        """Token ids that end an answer (generate stops a row there; padding comes only after them)."""
        cfg, tok = self.model.generation_config, self.processor.tokenizer
        ids = [cfg.eos_token_id, tok.eos_token_id]
        return sorted({int(i) for v in ids if v is not None for i in (v if isinstance(v, (list, tuple)) else [v])})

    def _generate_batch(self, enc, requests: list[Request]) -> list[Generation]:
        import torch

        enc = enc.to(self.device)
        limits = [r.max_new_tokens or self.max_new_tokens for r in requests]
        streamer = _RowStreamer([r.on_token for r in requests]) if any(r.on_token for r in requests) else None
        with torch.inference_mode():
            gen = self.model.generate(**enc, max_new_tokens=max(limits), streamer=streamer,
                                      **hf_sampling(requests[0]))
        new = gen[:, enc["input_ids"].shape[1]:].cpu()
        stop = torch.isin(new, torch.tensor(self.stop_ids(), dtype=new.dtype))
        out = []
        # Tokens come one at a time, so cutting a row at its own limit equals generating with it;
        # a row with no stop token within its limit was cut there.
        for row, ended, n in zip(new, stop, limits):
            hits = ended[:n].nonzero()
            tokens = int(hits[0]) if len(hits) else min(n, len(row))
            reason = "stop" if len(hits) else "length"
            out.append(Generation(self.processor.tokenizer.decode(row[:n], skip_special_tokens=True).strip(),
                                  finish_reason=reason, tokens=tokens))
        return out


class _RowStreamer:
    """transformers' streamer protocol for a whole batch: each step's token of row i goes to
    callbacks[i] (its own streamers take one sequence only). The callbacks get every token the
    batch makes for their row, also past the row's own stop token or limit: they cut there.
    They first get -1: an attempt starts (a batch that failed is retried: drop what came before)."""

    def __init__(self, callbacks: list[Callable[[int], None] | None]):
        self.callbacks, self.prompt_seen = callbacks, False

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate first puts the prompt's ids
            self.prompt_seen = True
            for callback in self.callbacks:
                if callback is not None:
                    callback(-1)
            return
        for callback, token in zip(self.callbacks, value.reshape(len(self.callbacks), -1)[:, -1].tolist()):
            if callback is not None:
                callback(int(token))

    def end(self) -> None:
        pass
