"""What stands between the network and the model in `medmo serve` (api.py wires it up).

- `BodyLimit` (ASGI): a body over `max_bytes` gets 413 before any endpoint reads it; a
  body that has not fully arrived `timeout_s` after the headers gets 408 (a client that
  trickles its body cannot hold a request open).
- `RequireKey` (ASGI): with a key, every path except the open ones (the web page and
  /healthz) needs `Authorization: Bearer <key>`; the docs and /openapi.json included. The
  scheme is matched case-insensitively (RFC 7235 section 2.1).
- `ErrorShield` (ASGI): an exception that escapes an endpoint becomes a logged 500 in
  OpenAI's error shape. Starlette's own 500 handler re-raises, and uvicorn then closes
  the keep-alive connection; here the connection stays usable.
- `header_timeout_protocol`: uvicorn's h11 protocol plus a header read timeout. uvicorn
  has none (its keep-alive timer stops at the first byte of a request), so a client that
  sends its headers one byte at a time held its connection for as long as it liked.
- `clean_text`: the one normalisation of user text before it reaches the model.
- `until_disconnect`: awaits an endpoint's work unless the client disconnects first; then
  cancels it (the batcher abandons its requests) and answers 499.
- `add_error_handlers`: 400 for bad input and malformed JSON; Starlette's 404, 405 and
  body errors in OpenAI's shape instead of FastAPI's `{"detail": ...}`.

Every refusal answers in OpenAI's error shape `{"error": {"message", "type", "code"}}`,
as JSON with non-ASCII escaped (a lone surrogate in an echoed value cannot break it).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import unicodedata

from fastapi import FastAPI, Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from medmo.data.schema import IMAGE_TOKEN
from medmo.serve.inputs import BadInput

logger = logging.getLogger(__name__)

OPEN_PATHS = ("/", "/healthz")  # answered without a key: the page asks for it, probes need health
_SURROGATE = re.compile("[\ud800-\udfff]")


def error_response(status: int, message: str, kind: str = "invalid_request_error",
                   headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}})  # ensure_ascii: always encodable
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def clean_text(text: str, what: str, reserved: tuple[str, ...]) -> str:
    """User text as the model may read it: lone surrogates (valid in JSON, "\\ud800") become
    U+FFFD, the text is put in NFC form, medmo's `<image>` placeholder is escaped (only real
    images are placeholders), and the tokenizer's special tokens (`<|im_start|>`,
    `<|image_pad|>`, ...) are refused: they would forge turns or break the image count."""
    text = unicodedata.normalize("NFC", _SURROGATE.sub("\ufffd", text))
    check_reserved(text, what, reserved)
    return text.replace(IMAGE_TOKEN, "< image >")


def check_reserved(text: str, what: str, reserved: tuple[str, ...]) -> None:
    for token in reserved:
        if token in text:
            raise BadInput(f"{what} contains {token}, a special token of the model's chat format that only the "
                           "server may place; remove it from the text")


class BodyLimit:
    """ASGI middleware: 413 over `max_bytes`, 408 when the body is not in within `timeout_s`."""

    def __init__(self, app, max_bytes: int, timeout_s: float):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        chunks, size, more = [], 0, True
        while more:
            try:
                msg = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                logger.info("408: body of %s not in after %g s", scope.get("path"), self.timeout_s)
                return await error_response(
                    408, f"the request body did not arrive within {self.timeout_s:g} s (body_timeout_s); send it "
                         "faster or ask the operator for a longer timeout", headers={"connection": "close"},
                )(scope, receive, send)
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
            return await receive()  # after the body: waits for the client to disconnect (api.py watches it)

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send):
        mb = self.max_bytes / (1024 * 1024)
        logger.info("413: body over %.0f MB on %s", mb, scope.get("path"))
        await error_response(413, f"request body is over the server's cap of {mb:g} MB (max_body_mb); "
                                  "send a smaller image", headers={"connection": "close"})(scope, receive, send)


class RequireKey:
    """ASGI middleware: every path but OPEN_PATHS without `Authorization: Bearer <key>` gets 401."""

    def __init__(self, app, key: str):
        self.app, self.expected = app, key.encode()

    def _authorized(self, header: bytes) -> bool:
        scheme, _, token = header.partition(b" ")
        return scheme.lower() == b"bearer" and secrets.compare_digest(token.strip(b" "), self.expected)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            sent = dict(scope["headers"]).get(b"authorization", b"")
            if not self._authorized(sent):
                logger.info("401: %s key on %s", "wrong" if sent else "no", scope["path"])
                why = "a wrong API key was sent" if sent else "no API key was sent"
                return await error_response(401, f"{why}: send the header `Authorization: Bearer <key>` with the key "
                                                 "the server was started with (--api-key, --api-key-file or "
                                                 "MEDMO_API_KEY)", "authentication_error")(scope, receive, send)
        return await self.app(scope, receive, send)


class ErrorShield:
    """ASGI middleware: an unexpected exception -> a logged 500 in OpenAI's shape, connection kept."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = {"started": False, "done": False}

        async def tracked(msg):
            if msg["type"] == "http.response.start":
                state["started"] = True
            elif msg["type"] == "http.response.body" and not msg.get("more_body", False):
                state["done"] = True
            await send(msg)

        try:
            await self.app(scope, receive, tracked)
        except Exception:  # noqa: BLE001 - the one place an unexpected error becomes a response
            logger.exception("500 on %s %s", scope.get("method"), scope.get("path"))
            if not state["started"]:
                await error_response(500, "the server failed while answering this request (the error is in its "
                                          "log); other requests are not affected", "server_error")(scope, receive, send)
            elif not state["done"]:
                await send({"type": "http.response.body", "body": b"", "more_body": False})


def header_timeout_protocol(timeout_s: float):
    """uvicorn's h11 protocol class, closing a connection whose request headers (or an unwanted
    rest of a body, after its response) are not in within `timeout_s` of their first byte.
    While the app works on a request the clock is off: BodyLimit bounds the body read."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _busy(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            if not self._busy() and not self.transport.is_closing():
                logger.info("closing a connection from %s: request not in within %g s (header_timeout_s)",
                            self.client, timeout_s)
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._busy() or self.conn.their_state is h11.DONE:
                self._disarm()
            else:
                self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


class ClientGone(Exception):
    """The client disconnected before its answer was ready (its generation was abandoned)."""


async def until_disconnect(http: HTTPRequest, work):
    """Await `work`; when the client disconnects first, cancel it (the batcher then abandons its
    requests) and raise ClientGone. After the body is read, `receive` only reports the disconnect."""
    task = asyncio.ensure_future(work)

    async def gone() -> None:
        while (await http.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # its cancellation reaches the batcher before we answer
    if task.cancelled():
        raise ClientGone()
    return task.result()


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BadInput)
    async def bad_input(_req: HTTPRequest, exc: BadInput):
        logger.info("%d: %s", exc.status, exc)
        return error_response(exc.status, str(exc))  # 400, or 413 for a decoding budget (inputs.TooLarge)

    @app.exception_handler(RequestValidationError)
    async def invalid(_req: HTTPRequest, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            msg = "malformed JSON body: " + "; ".join(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors)
        else:
            msg = "invalid request: " + "; ".join(_where(e) + f": {e.get('msg')}" for e in errors)
        logger.info("400: %s", msg)
        return error_response(400, msg)

    @app.exception_handler(HTTPException)
    async def http_error(req: HTTPRequest, exc: HTTPException):  # 404, 405, an undecodable body, ...
        logger.info("%d on %s %s: %s", exc.status_code, req.method, req.url.path, exc.detail)
        detail = "the body is not UTF-8 JSON" if "parsing the body" in str(exc.detail) else exc.detail
        return error_response(exc.status_code, f"{detail} ({req.method} {req.url.path})", headers=exc.headers)

    @app.exception_handler(ClientGone)
    async def client_gone(req: HTTPRequest, _exc: ClientGone):
        logger.info("client left before the answer to %s; its generation was abandoned", req.url.path)
        return error_response(499, "client closed the request")


def _where(error: dict) -> str:
    path = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    return path or "the body (a JSON object, sent with Content-Type: application/json)"
