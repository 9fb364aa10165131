"""Dynamic batching: concurrent HTTP requests share one `generate` call on the model.

One worker thread owns the model. It takes the first waiting request, then keeps
collecting until `max_batch_size` requests are in hand or `max_wait_ms` has passed since
the first, and runs them as one batch through the backend's `generate(list[Request])`
(eval-core's HFBackend: left-padded; one decoding setting per batch). While a batch runs, new requests queue up
and form the next batch, so batches grow with load and an idle server adds at most the
wait window to a request's latency. `max_batch_size=1` turns batching off (the baseline
bench/serve_load.py compares against).

Work that must not share a batch (token streaming, which transformers' streamers only
support for one sequence) runs through `run_exclusive` on the same thread, between
batches, so the model is never used from two threads at once.

Departure from vLLM-style continuous batching: a batch runs to completion before the
next starts (a request arriving mid-batch waits for it); simple, and enough on CPU and
for a single GPU with a small model.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

logger = logging.getLogger(__name__)

_STOP = object()  # queued by close(): the worker finishes what is queued before it, then exits


@dataclass
class _Item:
    payload: Any
    future: Future
    exclusive: bool = False  # payload is a callable to run alone


class DynamicBatcher:
    """Queue requests from any thread or event loop; a worker thread runs them in batches."""

    def __init__(self, generate: Callable[[list], list[str]], max_batch_size: int = 16, max_wait_ms: float = 10.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.generate = generate
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.batches = 0  # batches run so far
        self.requests = 0  # requests answered so far
        self._queue: queue.Queue = queue.Queue()  # _Item or _STOP
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "DynamicBatcher":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="medmo-batcher", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    # ------------------------------------------------------------------ submitting
    def submit_future(self, request) -> Future:
        """Queue one request; the future resolves to its generated text."""
        if self._thread is None:
            raise RuntimeError("DynamicBatcher.start() was not called")
        fut: Future = Future()
        self._queue.put(_Item(request, fut))
        return fut

    async def submit(self, request) -> str:
        return await asyncio.wrap_future(self.submit_future(request))

    async def run_exclusive(self, fn: Callable[[], Any]) -> Any:
        """Run `fn()` on the model thread with no batch in flight; returns its result."""
        if self._thread is None:
            raise RuntimeError("DynamicBatcher.start() was not called")
        fut: Future = Future()
        self._queue.put(_Item(fn, fut, exclusive=True))
        return await asyncio.wrap_future(fut)

    @property
    def mean_batch_size(self) -> float:
        return self.requests / self.batches if self.batches else 0.0

    # ------------------------------------------------------------------ worker
    def _loop(self) -> None:
        carry = None  # an item that ended the previous batch's collection
        while True:
            item = carry if carry is not None else self._queue.get()
            carry = None
            if item is _STOP:
                return
            if item.exclusive:
                _resolve(item.future, item.payload)
                continue
            batch = [item]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch_size:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is _STOP or nxt.exclusive:
                    carry = nxt
                    break
                batch.append(nxt)
            self._run(batch)

    def _run(self, batch: list[_Item]) -> None:
        live = [it for it in batch if it.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            texts = self.generate([it.payload for it in live])
        except Exception as e:  # noqa: BLE001 - the callers get the error; the worker keeps serving
            if len(live) == 1:
                logger.exception("request failed")
                live[0].future.set_exception(e)
                return
            logger.warning("batch of %d failed (%s); running its requests one by one", len(live), e)
            for it in live:  # one bad request must not fail the others
                self._run_one(it)
            return
        self.batches += 1
        self.requests += len(live)
        for it, text in zip(live, texts):
            it.future.set_result(text)

    def _run_one(self, item: _Item) -> None:
        try:
            text = self.generate([item.payload])[0]
        except Exception as e:  # noqa: BLE001 - handed to this request's caller only
            logger.exception("request failed")
            item.future.set_exception(e)
            return
        self.batches += 1
        self.requests += 1
        item.future.set_result(text)


def _resolve(fut: Future, fn: Callable[[], Any]) -> None:
    if not fut.set_running_or_notify_cancel():
        return
    try:
        fut.set_result(fn())
    except Exception as e:  # noqa: BLE001 - handed to the caller
        fut.set_exception(e)
