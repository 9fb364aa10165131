"""Peak resident memory of the running phase only, for the bench scripts (Linux).

`reset_peak()` clears the kernel's high-water mark (`echo 5 > /proc/self/clear_refs`) so
import-time spikes (pyarrow, numpy) do not hide what the measured work uses, and returns
the current RSS; `peak_mb()` reads the high-water mark since then (VmHWM). Elsewhere
both fall back to getrusage's lifetime peak.
"""
from __future__ import annotations

import resource
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
