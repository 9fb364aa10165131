"""Peak resident memory of the running phase only, for the bench scripts (Linux).

`reset_peak()` clears the kernel's high-water mark (`echo 5 > /proc/self/clear_refs`) so
import-time spikes (pyarrow, numpy) do not hide what the measured work uses, and returns
the current RSS; `peak_mb()` reads the high-water mark since then (VmHWM). Elsewhere
both fall back to getrusage's lifetime peak.

RSS also counts the pages of memory-mapped files a process has read: page cache the
kernel can drop at any time. `AnonPeak` samples anonymous memory (RssAnon, what the
process itself allocated) in a thread and keeps its peak: the number that decides
whether a job fits in a node's RAM.
"""
from __future__ import annotations

import resource
import threading
import time
from pathlib import Path


def _status(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak() -> float:
    """Current RSS in MB, after clearing the peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb() -> float:
    return _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """with AnonPeak() as p: work()  ->  p.peak_mb: the highest RssAnon seen (sampled every `interval` s)."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak_mb, self._stop = interval, 0.0, threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _status("RssAnon") or 0.0)
            time.sleep(self.interval)

    def __enter__(self) -> "AnonPeak":
        self.start_mb = _status("RssAnon") or 0.0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _status("RssAnon") or 0.0)
