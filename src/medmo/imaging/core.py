"""`open_image`: sniff the format, decode, window to 8 bits, return RGB; resolution budgets.

The source may be a path, a folder holding one DICOM series, raw bytes or a binary
file object (an HTTP upload). The format
is decided by content first (the DICOM "DICM" magic, the NIfTI header size, gzip) and by
the file name second, so a DICOM saved as `.bin` or a PNG named `.dcm` still opens.

16-bit greyscale rasters (PNG/TIFF) are scaled by their own min..max unless a window is
given: a 12-bit detector stored in 16 bits would otherwise render almost black, which is
what a plain `Image.convert("RGB")` does.
"""
from __future__ import annotations

import gzip
import io
import math
import struct
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medmo.registry import unknown_name_message

Source = Union[str, Path, bytes, bytearray, BinaryIO]
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


def open_image(src: Source, *, window: Window = None, slice_index: int | None = None, plane: str = "axial",
               frame: int | None = None, montage: int | None = None) -> Image.Image:
    """Any supported image -> RGB PIL.

    window: a preset name (WINDOW_PRESETS), (centre, width), or None for the file's own
        window (DICOM tags) or else its intensity range. Greyscale only: colour images
        (RGB PNG/JPEG, colour DICOM) are returned as they are.
    slice_index, plane ("axial" | "coronal" | "sagittal"), montage (N slices in a grid):
        NIfTI volumes and DICOM series folders (acquisition plane only); default the
        middle slice.
    frame: multi-frame DICOM / multi-page TIFF frame, or the volume of a 4-D NIfTI;
        default the middle DICOM frame, the first page or volume.
    Raises FileNotFoundError for a missing path and ValueError naming the file and the
    expected formats for anything unreadable.
    """
    win = resolve_window(window)
    if isinstance(src, (str, Path)) and Path(src).is_dir():
        from medmo.imaging.series import open_series

        return open_series(Path(src), window=win, slice_index=slice_index, montage=montage)
    name, data = _read_source(src)
    kind = sniff(data, name)
    try:
        if kind == "dicom":
            from medmo.imaging.dicom import open_dicom

            return open_dicom(data, name, window=win, frame=frame)
        if kind == "nifti":
            from medmo.imaging.nifti import open_nifti

            return open_nifti(data, name, window=win, slice_index=slice_index, plane=plane, frame=frame,
                              montage=montage)
        return _open_raster(data, name, win, frame)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as e:  # decoder errors come in many types (OSError, struct.error, RuntimeError, ...)
        raise ValueError(f"{name}: cannot be read as {kind} ({type(e).__name__}: {e}); expected {FORMATS}") from e


def _read_source(src: Source) -> tuple[str, bytes]:
    if isinstance(src, (bytes, bytearray)):
        return "<bytes>", bytes(src)
    if isinstance(src, (str, Path)):
        p = Path(src)
        if not p.is_file():
            raise FileNotFoundError(f"image {p} does not exist (expected a file in {FORMATS})")
        return str(p), p.read_bytes()
    if hasattr(src, "read"):
        return str(getattr(src, "name", "<stream>")), src.read()
    raise ValueError(f"open_image takes a path, bytes or a binary file object, not {type(src).__name__}")


def sniff(data: bytes, name: str = "") -> str:
    """'dicom' | 'nifti' | 'raster' from the first bytes, the file name breaking ties."""
    if data[128:132] == b"DICM":
        return "dicom"
    head = data[:4]
    if data[:2] == b"\x1f\x8b":
        try:
            head = gzip.GzipFile(fileobj=io.BytesIO(data)).read(4)
        except (OSError, EOFError):
            head = b""
    if len(head) == 4 and (struct.unpack("<i", head)[0] in (348, 540) or struct.unpack(">i", head)[0] in (348, 540)):
        return "nifti"
    low = name.lower()
    if low.endswith((".nii", ".nii.gz")):
        return "nifti"
    if low.endswith((".dcm", ".dicom")):
        return "dicom"  # DICOM without the 128-byte preamble
    return "raster"


def resolve_window(window: Window) -> tuple[float, float] | None:
    """A preset name or (centre, width) -> (centre, width); None stays None."""
    if window is None:
        return None
    if isinstance(window, str):
        key = window.strip().lower().replace("-", "_").replace(" ", "_")
        if key not in WINDOW_PRESETS:
            raise ValueError(unknown_name_message("window preset", window, WINDOW_PRESETS)
                             + "; or give (centre, width)")
        return WINDOW_PRESETS[key]
    if isinstance(window, (tuple, list)) and len(window) == 2:
        c, w = float(window[0]), float(window[1])
        if not w > 0:
            raise ValueError(f"window width must be > 0, got {w}")
        return c, w
    raise ValueError(f"window must be a preset name ({', '.join(WINDOW_PRESETS)}) or (centre, width), got {window!r}")


def window_to_uint8(arr: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Linear window (centre, width) -> uint8; None -> the array's own min..max."""
    a = np.asarray(arr, dtype=np.float32)
    if window is None:
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    else:
        lo, hi = window[0] - window[1] / 2, window[0] + window[1] / 2
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    out = (np.nan_to_num(a, nan=lo) - lo) * (255.0 / (hi - lo))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def gray_to_rgb(arr8: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr8), mode="L").convert("RGB")


def _open_raster(data: bytes, name: str, window: tuple[float, float] | None, frame: int | None) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except (UnidentifiedImageError, OSError) as e:
        if name.lower().endswith((".tif", ".tiff")):
            return _open_tifffile(data, name, window, frame)
        raise ValueError(f"{name}: not a readable image ({e}); expected {FORMATS}") from e
    if frame is not None:
        n = getattr(im, "n_frames", 1)
        if not 0 <= frame < n:
            raise ValueError(f"{name}: frame {frame} out of range; it has {n} frame(s)")
        im.seek(frame)
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return gray_to_rgb(window_to_uint8(np.asarray(im), window))
    if window is not None and im.mode == "L":
        return gray_to_rgb(window_to_uint8(np.asarray(im), window))
    return im.convert("RGB")


def _open_tifffile(data: bytes, name: str, window, frame) -> Image.Image:
    """TIFFs Pillow cannot decode (16-bit multi-channel, some compressions)."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        n = len(tf.pages)
        idx = 0 if frame is None else frame
        if not 0 <= idx < n:
            raise ValueError(f"{name}: frame {frame} out of range; it has {n} page(s)")
        arr = tf.pages[idx].asarray()
    if arr.ndim == 2:
        return gray_to_rgb(window_to_uint8(arr, window))
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3]
        if rgb.dtype != np.uint8:
            top = float(np.iinfo(rgb.dtype).max) if np.issubdtype(rgb.dtype, np.integer) else float(rgb.max() or 1)
            rgb = np.clip(rgb.astype(np.float32) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    raise ValueError(f"{name}: TIFF array of shape {arr.shape} is neither greyscale nor RGB")


def budget_size(width: int, height: int, max_pixels: int, *, multiple: int = 32,
                min_pixels: int | None = None) -> tuple[int, int]:
    """The (width, height) closest to the original aspect with sides a multiple of `multiple`
    and width*height within [min_pixels, max_pixels] (Qwen-VL's smart-resize rule)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max_pixels < multiple * multiple:
        raise ValueError(f"max_pixels={max_pixels} is below one {multiple}x{multiple} patch")
    w = max(multiple, round(width / multiple) * multiple)
    h = max(multiple, round(height / multiple) * multiple)
    if w * h > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        w = max(multiple, math.floor(width / beta / multiple) * multiple)
        h = max(multiple, math.floor(height / beta / multiple) * multiple)
    elif min_pixels and w * h < min_pixels:
        beta = math.sqrt(min_pixels / (width * height))
        w = math.ceil(width * beta / multiple) * multiple
        h = math.ceil(height * beta / multiple) * multiple
    return w, h


def fit_pixels(image: Image.Image, max_pixels: int, *, multiple: int = 32, min_pixels: int | None = None) -> Image.Image:
    """Resize to `budget_size` (bicubic); the image itself when it already fits exactly."""
    size = budget_size(image.width, image.height, max_pixels, multiple=multiple, min_pixels=min_pixels)
    return image if size == image.size else image.resize(size, Image.BICUBIC)
