"""`open_image`: sniff the format, decode, window to 8 bits, return RGB; resolution budgets.

The source may be a path, a folder holding one DICOM series, raw bytes or a binary
file object (an HTTP upload). The format
is decided by content first (the DICOM "DICM" magic, the NIfTI header size, gzip) and by
the file name second, so a DICOM saved as `.bin` or a PNG named `.dcm` still opens.

16-bit greyscale rasters (PNG/TIFF) are scaled by their own min..max unless a window is
given: a 12-bit detector stored in 16 bits would otherwise render almost black, which is
what a plain `Image.convert("RGB")` does.

Untrusted input: with a `Budget` (limits.py) every size is checked on the header before
pixels are decoded, and every failure, whatever the decoder raised, surfaces as one
one-line ValueError naming the file (FileNotFoundError for a missing path). Windows go
through one parser, `parse_window`, which the CLI and the HTTP API share.
"""
from __future__ import annotations

import io
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medmo.imaging.limits import GZIP_MAGIC, Budget, OverBudget, inflate
from medmo.imaging.pixels import FORMATS, Window, gray_to_rgb, one_line, parse_window, window_to_uint8

Source = Union[str, Path, bytes, bytearray, BinaryIO]


@dataclass
class Decoded:
    """What `decode` returns: the image and where it came from."""

    image: Image.Image  # RGB, what the model sees
    format: str  # "raster" | "dicom" | "nifti" | "series"
    info: dict = field(default_factory=dict)  # de-identified DICOM metadata (dicom_info); {} otherwise


def open_image(src: Source, *, window: Window = None, slice_index: int | None = None, plane: str = "axial",
               frame: int | None = None, montage: int | None = None, budget: Budget | None = None) -> Image.Image:
    """Any supported image -> RGB PIL.

    window: a preset name (WINDOW_PRESETS), (centre, width), "centre,width", or None for
        the file's own window (DICOM tags) or else its intensity range. Greyscale only:
        colour images (RGB PNG/JPEG, colour DICOM) are returned as they are.
    slice_index, plane ("axial" | "coronal" | "sagittal"), montage (N slices in a grid):
        NIfTI volumes and DICOM series folders (acquisition plane only); default the
        middle slice.
    frame: multi-frame DICOM / multi-page TIFF frame, or the volume of a 4-D NIfTI;
        default the middle DICOM frame, the first page or volume.
    budget: limits.Budget checked on the headers before anything large is decoded
        (None: no limits); `OverBudget` (a ValueError) names the budget exceeded.
    Raises FileNotFoundError for a missing path and a one-line ValueError naming the file
    and the expected formats for anything unreadable.
    """
    return decode(src, window=window, slice_index=slice_index, plane=plane, frame=frame, montage=montage,
                  budget=budget).image


def decode(src: Source, *, window: Window = None, slice_index: int | None = None, plane: str = "axial",
           frame: int | None = None, montage: int | None = None, budget: Budget | None = None,
           draft: int | None = None) -> Decoded:
    """`open_image` that also says the format and, for DICOM, the de-identified metadata.

    draft: the pixel budget (`budget_size`) the caller shrinks the image to next. A JPEG is
    then decoded by libjpeg's DCT scaling at the smallest of 1/2, 1/4, 1/8 that still covers
    that size (a 1024^2 X-ray for a 256^2 budget: 1 ms instead of 3.4 ms decoding plus 3.3 ms
    of bicubic shrink). The pixels differ from a full decode + bicubic shrink by about 0.5
    grey levels on average (area averaging, not bicubic); other formats ignore it.
    """
    win = parse_window(window)
    if isinstance(src, (str, Path)) and Path(src).is_dir():
        name, kind, data = str(src), "series", b""
    else:
        name, data = _read_source(src)
        kind = sniff(data, name)
    try:
        out = _decode(src, name, data, kind, win, slice_index, plane, frame, montage, budget, draft)
        if budget is not None:  # every path checked its header first; this catches a header that lied
            budget.image(*out.image.size, name, charge=False)
        return out
    except (OverBudget, FileNotFoundError, MemoryError):
        raise
    except ValueError as e:  # ours name the file; a library's (numpy, nibabel) does not
        msg = one_line(str(e))
        if msg == str(e) and msg.startswith(name):
            raise
        raise ValueError(msg if msg.startswith(name) else f"{name}: cannot be read as {kind} ({msg}); "
                                                          f"expected {FORMATS}") from e
    except Exception as e:  # decoder errors come in many types (OSError, struct.error, zlib.error, ...)
        raise ValueError(one_line(f"{name}: cannot be read as {kind} ({type(e).__name__}: {e}); "
                                  f"expected {FORMATS}")) from e


def _decode(src, name: str, data: bytes, kind: str, win, slice_index, plane, frame, montage,
            budget: Budget | None, draft: int | None = None) -> Decoded:
    if kind == "series":
        from medmo.imaging.series import open_series

        return Decoded(open_series(Path(src), window=win, slice_index=slice_index, montage=montage, budget=budget),
                       kind)
    if kind == "dicom":
        from medmo.imaging.dicom import decode_dicom

        image, info = decode_dicom(data, name, window=win, frame=frame, budget=budget)
        return Decoded(image, kind, info)
    if kind == "nifti":
        from medmo.imaging.nifti import open_nifti

        return Decoded(open_nifti(data, name, window=win, slice_index=slice_index, plane=plane, frame=frame,
                                  montage=montage, budget=budget), kind)
    return Decoded(_open_raster(data, name, win, frame, budget, draft), kind)


def _read_source(src: Source) -> tuple[str, bytes]:
    if isinstance(src, (bytes, bytearray)):
        return "<bytes>", bytes(src)
    if isinstance(src, (str, Path)):
        p = Path(src)
        if not p.is_file():
            raise FileNotFoundError(f"image {p} does not exist (expected a file in {FORMATS})")
        try:
            return str(p), p.read_bytes()
        except OSError as e:  # permissions, a FIFO, an I/O error
            raise ValueError(f"{p}: cannot be read ({type(e).__name__}: {e.strerror or e})") from None
    if hasattr(src, "read"):
        return str(getattr(src, "name", "<stream>")), src.read()
    raise ValueError(f"open_image takes a path, bytes or a binary file object, not {type(src).__name__}")


def sniff(data: bytes, name: str = "") -> str:
    """'dicom' | 'nifti' | 'raster' from the first bytes, the file name breaking ties.

    Never raises anything but ValueError: gzip data that does not inflate (the only
    compressed format read is .nii.gz) is refused here, naming the file."""
    if data[128:132] == b"DICM":
        return "dicom"
    head = data[:4]
    if data[:2] == GZIP_MAGIC:
        try:
            head = inflate(data, 4, wbits=31, what=name or "<bytes>")
        except ValueError as e:  # the only compressed format read is .nii.gz
            raise ValueError(f"{e}; expected {FORMATS}") from None
    if len(head) == 4 and (struct.unpack("<i", head)[0] in (348, 540) or struct.unpack(">i", head)[0] in (348, 540)):
        return "nifti"
    low = name.lower()
    if low.endswith((".nii", ".nii.gz")):
        return "nifti"
    if low.endswith((".dcm", ".dicom")):
        return "dicom"  # DICOM without the 128-byte preamble
    return "raster"


TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _open_raster(data: bytes, name: str, window: tuple[float, float] | None, frame: int | None,
                 budget: Budget | None = None, draft: int | None = None) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as e:  # Pillow's own cap (2x Image.MAX_IMAGE_PIXELS)
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        if budget is not None and pixels:
            budget.check("max_image_pixels", int(pixels.group(1)), name, f"an image of {pixels.group(1)} pixels")
        raise ValueError(f"{name}: {e}") from None
    except (UnidentifiedImageError, OSError) as e:
        if name.lower().endswith((".tif", ".tiff")) or data[:4] in TIFF_MAGIC:
            return _open_tifffile(data, name, window, frame, budget)
        why = "not a format Pillow knows" if isinstance(e, UnidentifiedImageError) else e
        raise ValueError(f"{name}: not a readable image ({why}); expected {FORMATS}") from e
    if budget is not None:
        budget.image(im.width, im.height, name)  # before any pixel is decoded
    if frame is not None:
        n = getattr(im, "n_frames", 1)
        if not 0 <= frame < n:
            raise ValueError(f"{name}: frame {frame} out of range; it has {n} frame(s)")
        im.seek(frame)
    if draft and im.format == "JPEG" and im.width * im.height > draft:
        im.draft(im.mode, budget_size(im.width, im.height, draft))  # at least that size on both sides
    try:
        im.load()
    except OSError as e:
        if name.lower().endswith((".tif", ".tiff")) or data[:4] in TIFF_MAGIC:
            return _open_tifffile(data, name, window, frame, budget, charged=budget is not None)
        raise ValueError(f"{name}: not a readable image ({e}); expected {FORMATS}") from e
    ImageOps.exif_transpose(im, in_place=True)  # not a copy of a 40 MP image (nor convert's, below)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return gray_to_rgb(window_to_uint8(np.asarray(im), window))
    if window is not None and im.mode == "L":
        return gray_to_rgb(window_to_uint8(np.asarray(im), window))
    return im if im.mode == "RGB" else im.convert("RGB")


def _open_tifffile(data: bytes, name: str, window, frame, budget: Budget | None = None,
                   charged: bool = False) -> Image.Image:
    """TIFFs Pillow cannot decode (16-bit multi-channel, some compressions)."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        n = len(tf.pages)
        if not n:
            raise ValueError(f"{name}: a TIFF without a readable page; expected {FORMATS}")
        idx = 0 if frame is None else frame
        if not 0 <= idx < n:
            raise ValueError(f"{name}: frame {frame} out of range; it has {n} page(s)")
        page = tf.pages[idx]
        if budget is not None:
            budget.image(page.imagewidth, page.imagelength, name, charge=not charged)
        arr = page.asarray()
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


def fit_pixels(image: Image.Image, max_pixels: int, *, multiple: int = 32, min_pixels: int | None = None,
               reducing_gap: float | None = None) -> Image.Image:
    """Resize to `budget_size` (bicubic); the image itself when it already fits exactly.
    `reducing_gap` (PIL's): box-reduce first when shrinking that many times or more, about
    half the time for a 1024^2 image to 256^2, a slightly different resampling."""
    size = budget_size(image.width, image.height, max_pixels, multiple=multiple, min_pixels=min_pixels)
    return image if size == image.size else image.resize(size, Image.BICUBIC, reducing_gap=reducing_gap)
