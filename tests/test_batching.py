"""DynamicBatcher: batches form under load, answers go back to their own callers, one bad
request does not fail its batch-mates, abandoned work stops. The generate function
here is plain Python (it records the batches it sees); test_api.py runs the real model."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from medmo.serve.batching import DynamicBatcher


class Recorder:
    """generate(list[str]) -> upper-cased strings; fails on "bad"; records batch sizes."""

    def __init__(self, delay: float = 0.02):
        self.sizes: list[int] = []
        self.delay = delay
        self.threads: set[str] = set()

    def __call__(self, batch: list[str]) -> list[str]:
        self.sizes.append(len(batch))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if "bad" in batch:
            raise ValueError("bad request")
        return [s.upper() for s in batch]


async def _submit_all(batcher: DynamicBatcher, items: list[str]):
    return await asyncio.gather(*(batcher.submit(s) for s in items), return_exceptions=True)


@pytest.mark.parametrize("max_batch,n,expect_max", [
    (8, 20, 8),  # batches fill up to the cap under load
    (1, 5, 1),   # max_batch_size=1: batching off, one request per call
])
def test_batches_form_up_to_the_cap_and_answers_keep_their_order(max_batch, n, expect_max):
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=max_batch, max_wait_ms=50).start()
    items = [f"req{i}" for i in range(n)]
    try:
        out = asyncio.run(_submit_all(batcher, items))
    finally:
        batcher.close()
    assert out == [s.upper() for s in items]
    assert max(rec.sizes) == expect_max and sum(rec.sizes) == n
    assert batcher.requests == n and batcher.batches == len(rec.sizes)
    assert rec.threads == {"medmo-batcher"}  # the model is used from one thread only


def test_one_bad_request_fails_alone():
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=8, max_wait_ms=50).start()
    try:
        out = asyncio.run(_submit_all(batcher, ["a", "bad", "c"]))
    finally:
        batcher.close()
    assert out[0] == "A" and out[2] == "C"
    assert isinstance(out[1], ValueError)
    assert rec.sizes[0] == 3  # tried together first


def test_a_failed_batch_is_retried_in_halves_not_one_by_one():
    rec = Recorder(delay=0)
    batcher = DynamicBatcher(rec, max_batch_size=16, max_wait_ms=200).start()
    items = ["bad"] + [f"r{i}" for i in range(15)]
    try:
        out = asyncio.run(_submit_all(batcher, items))
    finally:
        batcher.close()
    assert isinstance(out[0], ValueError) and out[1:] == [s.upper() for s in items[1:]]
    # 16 fails; halves of 8, 4, 2, 1 hold the bad one; the good halves (8, 4, 2, 1) run whole
    assert rec.sizes == [16, 8, 4, 2, 1, 1, 2, 4, 8]  # 9 calls, where one by one takes 17
    assert batcher.requests == 15


class Steps:
    """generate(list[str]) that decodes `steps` steps, checking for abandoned requests at each."""

    def __init__(self, steps: int = 100):
        self.steps, self.ran = steps, []
        self.batcher: DynamicBatcher | None = None
        self.started = threading.Event()

    def __call__(self, batch: list[str]) -> list[str]:
        done = 0
        try:
            for done in range(1, self.steps + 1):
                self.batcher.check_cancelled()
                self.started.set()
                time.sleep(0.01)
        finally:
            self.ran.append(done)
        return [s.upper() for s in batch]


def _steps_batcher(steps: int = 100) -> tuple[Steps, DynamicBatcher]:
    gen = Steps(steps)
    gen.batcher = DynamicBatcher(gen, max_batch_size=4, max_wait_ms=20).start()
    return gen, gen.batcher


def test_a_batch_whose_callers_all_left_stops_at_the_next_step():
    gen, batcher = _steps_batcher()

    async def scenario():
        tasks = [asyncio.ensure_future(batcher.submit(s)) for s in ("a", "b")]
        await asyncio.to_thread(gen.started.wait, 30)
        for t in tasks:
            t.cancel()  # what api.py does when the HTTP clients disconnect
        await asyncio.gather(*tasks, return_exceptions=True)
        return await batcher.submit("next")

    try:
        assert asyncio.run(scenario()) == "NEXT"
    finally:
        batcher.close()
    assert gen.ran[0] < gen.steps and gen.ran[1] == gen.steps  # stopped early; the next request ran in full
    assert batcher.abandoned == 2 and batcher.requests == 1


def test_a_batch_with_a_live_request_runs_on_and_drops_the_abandoned_answer():
    gen, batcher = _steps_batcher(steps=30)

    async def scenario():
        leaving, staying = (asyncio.ensure_future(batcher.submit(s)) for s in ("a", "b"))
        await asyncio.to_thread(gen.started.wait, 30)
        leaving.cancel()
        return await staying

    try:
        assert asyncio.run(scenario()) == "B"
    finally:
        batcher.close()
    assert gen.ran == [30] and batcher.abandoned == 1 and batcher.requests == 1


def test_a_request_abandoned_while_queued_never_runs():
    gen, batcher = _steps_batcher(steps=30)

    async def scenario():
        first = asyncio.ensure_future(batcher.submit("x"))
        await asyncio.to_thread(gen.started.wait, 30)  # "x" holds the model: the next one queues
        queued = asyncio.ensure_future(batcher.submit("queued"))
        await asyncio.sleep(0.05)
        queued.cancel()
        return await first

    try:
        assert asyncio.run(scenario()) == "X"
    finally:
        batcher.close()
    assert gen.ran == [30] and batcher.abandoned == 1  # only the first batch ran


def test_wait_window_bounds_an_idle_request_and_bad_settings_are_refused():
    batcher = DynamicBatcher(Recorder(delay=0), max_batch_size=16, max_wait_ms=5).start()
    try:
        t0 = time.perf_counter()
        assert asyncio.run(batcher.submit("solo")) == "SOLO"
        assert time.perf_counter() - t0 < 5  # not stuck waiting for company
    finally:
        batcher.close()
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBatcher(Recorder(), max_batch_size=0)
    with pytest.raises(RuntimeError, match="start"):
        DynamicBatcher(Recorder()).submit_future("x")
