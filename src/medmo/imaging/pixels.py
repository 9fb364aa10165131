"""What every decoder shares: the format list, CT window presets, the one window parser,
windowing to 8 bits, grey to RGB, one-line messages.

The bottom of `medmo.imaging`: `core` (sniff and dispatch) and the format decoders
(`dicom`, `nifti`, `series`) all import from here, and this module imports none of them,
so the dispatcher can call a decoder without an import circle.
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
from PIL import Image

from medmo.registry import unknown_name_message

Window = Union[str, tuple[float, float], list, None]

FORMATS = "PNG, JPEG, TIFF (8/16-bit), DICOM (.dcm) or NIfTI (.nii/.nii.gz)"

# (centre, width) in Hounsfield units: the usual radiology presets for CT.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (40.0, 400.0),
    "soft_tissue": (40.0, 400.0),
    "liver": (60.0, 160.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
}


def one_line(text: str) -> str:
    """Decoder messages may span lines; a CLI error and a log line should not."""
    return " ".join(text.split())


WINDOW_HELP = "a preset name ({}) or centre,width with finite numbers and width > 0, e.g. -600,1500"


def parse_window(window: Window) -> tuple[float, float] | None:
    """THE window parser (CLI, HTTP API, code): None or "" -> None; a preset name;
    "centre,width"; (centre, width) or [centre, width]. Both numbers must be finite and
    the width > 0; anything else is a ValueError that says what to give."""
    if window is None:
        return None
    given = window
    what = f"window must be {WINDOW_HELP.format(', '.join(WINDOW_PRESETS))}, got {given!r}"
    if isinstance(window, str):
        text = window.strip()
        if not text:
            return None
        if "," not in text:
            key = text.lower().replace("-", "_").replace(" ", "_")
            if key not in WINDOW_PRESETS:
                raise ValueError(unknown_name_message("window preset", text, WINDOW_PRESETS)
                                 + "; or give centre,width")
            return WINDOW_PRESETS[key]
        window = text.split(",")
    if not isinstance(window, (tuple, list)) or len(window) != 2 or any(isinstance(v, bool) for v in window):
        raise ValueError(what)
    try:
        c, w = float(window[0]), float(window[1])
    except (TypeError, ValueError):
        raise ValueError(what) from None
    if not (math.isfinite(c) and math.isfinite(w)):
        raise ValueError(f"window centre and width must be finite numbers, got {given!r}")
    if not w > 0:
        raise ValueError(f"window width must be > 0, got {given!r}")
    return c, w


def window_to_uint8(arr: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Linear window (centre, width) -> uint8; None -> the array's own finite min..max.
    Works on one float32 copy in place (a 40 MP frame costs 160 MB here, not 4x that)."""
    a = np.array(arr, dtype=np.float32)
    if window is None:
        ok = np.isfinite(a)
        if not ok.any():
            lo, hi = 0.0, 1.0
        else:
            lo, hi = float(a.min(where=ok, initial=np.inf)), float(a.max(where=ok, initial=-np.inf))
        del ok
    else:
        lo, hi = window[0] - window[1] / 2, window[0] + window[1] / 2
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    np.nan_to_num(a, copy=False, nan=lo)
    a -= lo
    a *= 255.0 / (hi - lo)
    a += 0.5
    np.clip(a, 0, 255, out=a)
    return a.astype(np.uint8)


def gray_to_rgb(arr8: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr8), mode="L").convert("RGB")
