"""Talking to an OpenAI-compatible chat server (vLLM, SGLang, TGI, `medmo serve`, a hosted model).

One request format for every medmo client of such a server: `to_openai_messages` turns a
generation `Request` (unified turns with `<image>` placeholders) into chat messages whose
images travel as PNG data URLs, `chat_params` adds the budget and sampling settings, and
`generation_from` reads a chat completion back into a `Generation`. Evaluation's `openai`
backend (medmo.eval.backends) sends these through the `openai` SDK; `medmo serve --upstream`
sends them through `OpenAIChat`, a small httpx client (httpx is already a serve dependency)
that streams and keeps the upstream's HTTP status, so the front end can pass a refusal on.
"""
from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator

from medmo.model.chat import IMAGE_TOKEN
from medmo.model.generate import Generation, Request


def image_data_url(image) -> str:
    """A PIL image as a PNG data URL (what OpenAI-compatible servers accept)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def to_openai_messages(req: Request) -> list[dict]:
    """Unified turns -> OpenAI chat messages, each <image> replaced by an image_url part."""
    images = iter(req.images)
    out = []
    for m in req.messages:
        if IMAGE_TOKEN not in m["content"]:
            out.append({"role": m["role"], "content": m["content"]})
            continue
        parts: list[dict] = []
        for i, chunk in enumerate(m["content"].split(IMAGE_TOKEN)):
            if i > 0:
                parts.append({"type": "image_url", "image_url": {"url": image_data_url(next(images))}})
            if chunk:
                parts.append({"type": "text", "text": chunk})
        out.append({"role": m["role"], "content": parts})
    return out


def chat_params(req: Request, model: str, max_tokens: int, temperature: float | None = None,
                stop: list[str] | None = None) -> dict[str, Any]:
    """The body of POST /chat/completions for `req` (`temperature`: used when the request has none)."""
    temperature = temperature if req.temperature is None else req.temperature
    return {"model": model, "messages": to_openai_messages(req), "max_tokens": req.max_new_tokens or max_tokens,
            **({"temperature": temperature} if temperature is not None else {}),
            **({"top_p": req.top_p} if req.top_p else {}), **({"seed": req.seed} if req.seed is not None else {}),
            **({"stop": stop} if stop else {})}


def generation_from(completion: dict) -> Generation:
    """The first choice of a chat completion (a JSON dict) as a Generation."""
    choice = completion["choices"][0]
    tokens = (completion.get("usage") or {}).get("completion_tokens")
    return Generation((choice["message"].get("content") or "").strip(), finish_reason=choice.get("finish_reason"),
                      tokens=tokens)


@dataclass
class UpstreamError(Exception):
    """The upstream answered with an error status (its message kept), or could not be reached (502)."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


class OpenAIChat:
    """An async client of one OpenAI-compatible server: `complete`, `stream` and `models`."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600.0, max_connections: int = 512):
        import httpx

        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout, limits=limits)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _check(self, response) -> None:
        if response.status_code >= 400:
            await response.aread()
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:500]
            raise UpstreamError(response.status_code, f"upstream {self.base_url}: {message}")

    async def models(self) -> list[str]:
        """The ids the server lists at /models."""
        response = await self._send("GET", "/models")
        return [m["id"] for m in response.json().get("data", [])]

    async def _send(self, method: str, path: str, body: dict | None = None):
        import httpx

        try:
            response = await self.http.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"upstream {self.base_url} did not answer: {type(e).__name__}: {e}") from e
        await self._check(response)
        return response

    async def complete(self, params: dict) -> dict:
        """POST /chat/completions; the completion as JSON."""
        return (await self._send("POST", "/chat/completions", params)).json()

    async def stream(self, params: dict) -> AsyncIterator[dict]:
        """POST /chat/completions with stream: true; yields each chunk (JSON). Closing the iterator
        closes the connection, which a server such as `medmo serve` takes as the client leaving."""
        import httpx

        try:
            async with self.http.stream("POST", "/chat/completions", json={**params, "stream": True}) as response:
                await self._check(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise UpstreamError(502, f"upstream {self.base_url}: {chunk['error'].get('message')}")
                    yield chunk
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"upstream {self.base_url} did not answer: {type(e).__name__}: {e}") from e
