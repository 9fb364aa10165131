"""Dynamic batching: concurrent HTTP requests share one `generate` call on the model.

One worker thread owns the model. It takes the first waiting request, then keeps
collecting until `max_batch_size` requests are in hand or `max_wait_ms` has passed since
the first, and runs them as one batch through the backend's `generate(list[Request])`
(HFBackend.generations: left-padded; one decoding setting per batch; each request's
answer is whatever `generate` returns for it, a Generation). While a batch runs, new requests queue up
and form the next batch, so batches grow with load and an idle server adds at most the
wait window to a request's latency. `max_batch_size=1` turns batching off (the baseline
bench/serve_load.py compares against).

Streamed chats are batch members like any other (engines.py: their tokens leave through
`Request.on_token` as the batch decodes), so nothing runs alone and the model is only ever
used from this one thread.

Work ends with its client: cancelling the coroutine that awaits `submit` (api.py does so
when the HTTP client disconnects) marks the request
abandoned. A request abandoned while queued never runs; a running batch checks
`check_cancelled()` at every decoding step (api.py calls it from a forward pre-hook on the
model) and stops once all its requests are abandoned. A batch that still has a live
request runs on (its abandoned rows cost little next to it) and their answers are dropped.

A batch whose `generate` raises is split in two halves and each is retried, down to the
single request that fails, which alone gets the error: its batch-mates are answered
after a few batches instead of one by one (and a batch too large for memory gets smaller).

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
from dataclasses import dataclass, field
from typing import Any, Callable

logger = logging.getLogger(__name__)

_STOP = object()  # queued by close(): the worker finishes what is queued before it, then exits


class Cancelled(Exception):
    """Raised inside `generate` at a decoding step when every request of the batch was abandoned."""


@dataclass
class _Item:
    payload: Any
    future: Future
    abandoned: threading.Event = field(default_factory=threading.Event)  # its caller is gone


class DynamicBatcher:
    """Queue requests from any thread or event loop; a worker thread runs them in batches."""

    def __init__(self, generate: Callable[[list], list], max_batch_size: int = 16, max_wait_ms: float = 10.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.generate = generate
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.batches = 0  # batches run so far
        self.requests = 0  # requests answered so far
        self.abandoned = 0  # requests whose caller left before the answer (not run, stopped or dropped)
        self._running: list[_Item] = []  # the batch on the model now
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
    def _put(self, payload) -> _Item:
        if self._thread is None:
            raise RuntimeError("DynamicBatcher.start() was not called")
        item = _Item(payload, Future())
        self._queue.put(item)
        return item

    def submit_future(self, request) -> Future:
        """Queue one request; the future resolves to its answer."""
        return self._put(request).future

    async def submit(self, request) -> Any:
        """The request's answer; cancelling the awaiting task abandons the request (see the top)."""
        return await self._wait(self._put(request))

    @staticmethod
    async def _wait(item: _Item) -> Any:
        try:
            return await asyncio.wrap_future(item.future)
        except asyncio.CancelledError:
            item.abandoned.set()
            raise

    def check_cancelled(self) -> None:
        """Called at each decoding step on the model thread: raises `Cancelled` when every request
        of the running batch has been abandoned by its caller."""
        running = self._running
        if running and all(it.abandoned.is_set() for it in running):
            raise Cancelled(f"all {len(running)} request(s) of the batch were abandoned")

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
            batch = [item]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch_size:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is _STOP:
                    carry = nxt
                    break
                batch.append(nxt)
            self._run(batch)

    def _run(self, batch: list[_Item]) -> None:
        live = [it for it in batch if self._start(it)]
        if live:
            self._generate(live)

    def _generate(self, live: list[_Item]) -> None:
        self._running = live
        try:
            answers = self.generate([it.payload for it in live])
        except Cancelled as e:
            self.abandoned += len(live)
            for it in live:
                it.future.set_exception(e)
            return
        except Exception as e:  # noqa: BLE001 - the callers get the error; the worker keeps serving
            if len(live) == 1:
                logger.exception("request failed")
                live[0].future.set_exception(e)
                return
            half = len(live) // 2
            logger.warning("batch of %d failed (%s: %s); retrying it as two batches", len(live), type(e).__name__, e)
            self._generate(live[:half])
            self._generate(live[half:])
            return
        finally:
            self._running = []
        self.batches += 1
        for it, answer in zip(live, answers):
            if it.abandoned.is_set():
                self.abandoned += 1  # answered after its caller left: dropped
                it.future.set_exception(Cancelled("abandoned while its batch ran"))
            else:
                self.requests += 1
                it.future.set_result(answer)

    def _start(self, item: _Item) -> bool:
        """Mark `item` running; False (and counted) when its caller left while it waited."""
        if item.abandoned.is_set():
            item.future.cancel()
        if item.future.set_running_or_notify_cancel():
            return True
        self.abandoned += 1
        return False
