"""The httpx client of `medmo serve --upstream`: one OpenAI-compatible server (vLLM, SGLang,
TGI, another `medmo serve`), asked with medmo.model.remote's request format.

Unlike the `openai` SDK (evaluation's transport), it keeps the upstream's HTTP status and
message (`UpstreamError`), so the front end answers a refusal with the upstream's own 4xx,
and it does not retry: a retried generation would cost the upstream twice. An upstream that
cannot be reached is a 502.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import AsyncIterator

import httpx


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
