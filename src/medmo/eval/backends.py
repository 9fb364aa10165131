"""Generation backends behind one call: `generations(list[Request]) -> list[Generation]`.

A `Generation` is one request's outcome: its text, the error that stopped it (the request
is then counted as failed, never a crashed batch), why generation ended ("stop", or
"length" when the answer was cut at its token budget) and how many tokens it generated,
so evaluation can count answers cut short. `generate(requests) -> list[str]` is the text
alone, for callers that want only that; there is no side channel: errors travel in the
Generation of their request.

- `hf`: in-process transformers generation (medmo.model.generate.HFBackend): batched
  with left padding, greedy unless a request asks for sampling.
- `vllm`: optional extra for GPUs, imported lazily; same prompts (the checkpoint's own
  chat template), greedy unless a request asks for sampling.
- `openai`: any OpenAI-compatible server (vLLM serve, `medmo serve`, a hosted model);
  images travel as PNG data URLs; requests run concurrently under a semaphore.

Departure from MedEvalKit: its hf path generates one sample at a time; medmo batches.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from medmo.model.chat import to_conversation
# Request, Generation, HFBackend and hf_sampling are re-exported: evaluation code imports them from here.
from medmo.model.generate import Generation, HFBackend, Request, TextsMixin, checkpoint_fingerprint, hf_sampling
# the request body every OpenAI-compatible client of medmo shares (medmo serve --upstream too)
from medmo.model.remote import chat_params
from medmo.registry import Registry

logger = logging.getLogger(__name__)


BACKENDS: Registry[type] = Registry("backend")


def get_backend(name: str, **kwargs):
    """An instance of the named backend ("hf", "vllm", "openai") built with `kwargs`."""
    return BACKENDS.get(name)(**kwargs)


BACKENDS.register("hf")(HFBackend)


@BACKENDS.register("vllm")
class VLLMBackend(TextsMixin):
    """vLLM offline engine (GPU), in an environment of its own (README, Install: each vLLM
    release pins an exact torch and transformers, never the ones medmo's tests run on)."""

    def __init__(self, model: str | Path, max_new_tokens: int = 256, dtype: str = "auto",
                 min_pixels: int | None = None, max_pixels: int | None = None, max_images: int = 8,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85, batch_size: int | None = None,
                 device: str | None = None):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ValueError("backend 'vllm' needs vLLM on a GPU machine: `pip install vllm` in an environment of "
                             "its own (README, Install), or use --backend hf") from e
        from medmo.model.load import load_processor

        self._sampling = SamplingParams
        self.name = str(model)
        self.fingerprint = checkpoint_fingerprint(model)
        self.max_new_tokens = max_new_tokens
        self.processor = load_processor(model, min_pixels=min_pixels, max_pixels=max_pixels)
        # Qwen3-VL's image processor takes its pixel budget as size={shortest_edge, longest_edge}
        # (the checkpoint's own values, with ours applied by load_processor)
        budget = min_pixels is not None or max_pixels is not None
        mm_kwargs = {"size": dict(self.processor.image_processor.size)} if budget else None
        self.llm = LLM(model=str(model), dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                       gpu_memory_utilization=gpu_memory_utilization, limit_mm_per_prompt={"image": max_images},
                       mm_processor_kwargs=mm_kwargs)

    def generations(self, requests: list[Request]) -> list[Generation]:
        inputs = []
        for r in requests:
            prompt = self.processor.apply_chat_template(to_conversation(r.messages), add_generation_prompt=True,
                                                        tokenize=False)
            item: dict[str, Any] = {"prompt": prompt}
            if r.images:
                item["multi_modal_data"] = {"image": list(r.images)}
            inputs.append(item)
        params = [self._sampling(temperature=r.temperature or 0.0, top_p=r.top_p or 1.0, seed=r.seed,
                                 max_tokens=r.max_new_tokens or self.max_new_tokens) for r in requests]
        outs = self.llm.generate(inputs, params, use_tqdm=False)
        return [Generation(o.outputs[0].text.strip(), finish_reason=o.outputs[0].finish_reason,
                           tokens=len(o.outputs[0].token_ids)) if o.outputs else Generation(error="vllm: no output")
                for o in outs]


@BACKENDS.register("openai")
class OpenAIBackend(TextsMixin):
    """Any OpenAI-compatible chat endpoint; the key is read from `api_key_env` (may be unset)."""

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_new_tokens: int = 256, concurrency: int = 8, timeout: float = 120.0, max_retries: int = 2,
                 temperature: float = 0.0, batch_size: int | None = None, **_ignored):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.model = self.name = str(model)
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not self.base_url:
            raise ValueError("backend 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1) or OPENAI_BASE_URL")
        self.api_key = os.environ.get(api_key_env) or "EMPTY"
        self.max_new_tokens = max_new_tokens
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.temperature = temperature

    def generations(self, requests: list[Request]) -> list[Generation]:
        return asyncio.run(self._run(requests))

    async def _run(self, requests: list[Request]) -> list[Generation]:
        from openai import AsyncOpenAI

        sem = asyncio.Semaphore(self.concurrency)
        async with AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout,
                               max_retries=self.max_retries) as client:
            async def one(i: int, req: Request) -> Generation:
                async with sem:
                    try:
                        resp = await client.chat.completions.create(
                            **chat_params(req, self.model, self.max_new_tokens, self.temperature))
                        choice = resp.choices[0]
                        usage = getattr(resp, "usage", None)
                        return Generation((choice.message.content or "").strip(), finish_reason=choice.finish_reason,
                                          tokens=getattr(usage, "completion_tokens", None))
                    except Exception as e:  # noqa: BLE001 - any transport/server error becomes a counted failure
                        logger.warning("openai backend: request %d failed: %s: %s", i, type(e).__name__, e)
                        return Generation(error=f"{type(e).__name__}: {e}")

            return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))
