"""A local fake OpenAI-compatible server for tests (loopback only, bounded).

`FakeOpenAI(reply)` serves POST /v1/chat/completions on 127.0.0.1 with a random port in a
daemon thread. `reply(body)` builds the answer from the request body: a str (the assistant
text, finish_reason "stop") or a dict with any of "content" (may be None), "finish_reason",
"reasoning_content" and "completion_tokens" (to act like a reasoning model or a cut reply).
It may sleep (to make a client time out), raise `Reject` (400) or raise anything else (500).
The server keeps every request body and the highest number of requests it held at once.
`budget(body)` reads a request's completion budget under either name.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class Reject(Exception):
    """Raise from `reply` to answer 400 (or `status`) with this message, e.g. a parameter the
    endpoint refuses, a wrong key (401) or an unknown model (404)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class FakeOpenAI:
    def __init__(self, reply: Callable[[dict], str], max_requests: int = 10_000):
        self.reply = reply
        self.max_requests = max_requests  # bound: a runaway client cannot loop forever
        self.bodies: list[dict] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.bodies.append(body)
                    fake.active += 1
                    fake.max_active = max(fake.max_active, fake.active)
                    over = len(fake.bodies) > fake.max_requests
                try:
                    if over or not self.path.endswith("/chat/completions"):
                        raise RuntimeError("refused")
                    out = fake.reply(body)
                    out = out if isinstance(out, dict) else {"content": out}
                    message = {"role": "assistant", "content": out.get("content")}
                    if "reasoning_content" in out:
                        message["reasoning_content"] = out["reasoning_content"]
                    used = out.get("completion_tokens", 1)
                    status, payload = 200, {
                        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                        "model": body.get("model", "fake"),
                        "choices": [{"index": 0, "finish_reason": out.get("finish_reason", "stop"),
                                     "message": message}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": used, "total_tokens": used + 1},
                    }
                except Reject as e:
                    status, payload = e.status, {"error": {"message": str(e), "type": "invalid_request_error"}}
                except Exception as e:  # noqa: BLE001 - the fake turns any other failure into a 500
                    status, payload = 500, {"error": {"message": str(e), "type": "server_error"}}
                finally:
                    with fake._lock:
                        fake.active -= 1
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def user_text(body: dict) -> str:
    """The text parts of the last user message of a request body."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def budget(body: dict) -> int | None:
    """The completion budget a request asked for, under either parameter name."""
    return body.get("max_completion_tokens", body.get("max_tokens"))
