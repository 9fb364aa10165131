"""Images arriving over HTTP: decode, check limits, keep patient tags out of everything.

An image field is a data URL (`data:image/png;base64,...`, what OpenAI clients send) or
bare base64 of the file's bytes: PNG, JPEG, TIFF, DICOM or NIfTI, decoded by
`medmo.imaging.open_image` from BYTES only. Paths and URLs are refused with a message
saying what to send instead: the server never reads its own files or fetches anything.

Limits: each request gets one `medmo.imaging.Budget` (ServeConfig's max_image_pixels,
max_request_pixels, max_volume_voxels, max_decompressed_bytes), checked on headers
before anything large is inflated or decoded, and shared by all images of a request;
over budget raises `TooLarge` (HTTP 413) naming the budget and the serve flag that
raises it. DICOM: patient-identifying values are redacted from any error message and
pydicom's warnings are kept out of the logs (medmo.imaging.dicom); the metadata a
response may carry comes from the de-identified dataset.
Every other problem raises `BadInput` (a ValueError), which the API turns into HTTP 400.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from PIL import Image

from medmo.imaging import Budget, Limits, OverBudget, decode, parse_window as _parse_window

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w-]+=[\w.+-]+)*)(;base64)?,", re.I)
_URL_OR_PATH = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|file:|~|\.{1,2}/|[a-z]:\\)", re.I)
_B64_WS = re.compile(rb"\s+")
MAX_ASPECT = 200  # Qwen2/3-VL's smart_resize refuses more elongated images
RAISE_WITH = ("send a smaller image (or fewer), or ask the operator to raise it: `medmo serve --{flag} N` "
              "(ServeConfig.{field})")


class BadInput(ValueError):
    """A request the server refuses with 400 (the message says what to send instead)."""

    status = 400


class TooLarge(BadInput):
    """A request over one of the decoding budgets: 413, naming the budget (`budget`)."""

    status = 413

    def __init__(self, message: str, budget: str):
        super().__init__(message)
        self.budget = budget


def request_budget(max_image_pixels: int, max_request_pixels: int, max_volume_voxels: int,
                   max_decompressed_bytes: int) -> Budget:
    """A fresh budget for one request, whose errors name the serve flags."""
    return Budget(Limits(max_image_pixels=max_image_pixels, max_request_pixels=max_request_pixels,
                         max_volume_voxels=max_volume_voxels, max_decompressed_bytes=max_decompressed_bytes,
                         raise_with=RAISE_WITH))


@dataclass
class DecodedImage:
    image: Image.Image  # RGB, what the model sees
    format: str  # "raster" | "dicom" | "nifti"
    info: dict = field(default_factory=dict)  # de-identified DICOM metadata (Modality, window, ...)


def image_bytes(field_value: object, what: str = "image") -> bytes:
    """A data URL or bare base64 string -> the file's bytes; BadInput for anything else."""
    if not isinstance(field_value, str) or not field_value.strip():
        raise BadInput(f"{what}: expected a data URL (data:image/png;base64,...) or base64 of the file's bytes")
    text = field_value.strip()
    m = _DATA_URL.match(text)
    if m:
        if not m.group(3):
            raise BadInput(f"{what}: data URL must be base64-encoded (data:<type>;base64,<data>)")
        payload = text[m.end():]
    elif _URL_OR_PATH.match(text) or (text.startswith("/") and not _is_base64(text)):
        raise BadInput(f"{what}: image paths and URLs are not accepted (the server reads no files and fetches "
                       "nothing); send the image's bytes as a data URL (data:image/png;base64,...) or base64")
    else:
        payload = text
    try:
        data = base64.b64decode(_B64_WS.sub(b"", payload.encode("ascii")), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        raise BadInput(f"{what}: malformed base64 ({e}); send the file's bytes base64-encoded") from e
    if not data:
        raise BadInput(f"{what}: empty image data")
    return data


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
        return True
    except (binascii.Error, ValueError):
        return False


def decode_image(data: bytes, *, budget: Budget, window=None, slice_index: int | None = None,
                 frame: int | None = None, what: str = "image", draft: int | None = None) -> DecodedImage:
    """File bytes -> RGB image within the request's budget; TooLarge (413) or BadInput (400) naming the problem.
    `draft`: the pixel budget the image shrinks to next (medmo.imaging.decode: JPEG DCT scaling)."""
    try:
        out = decode(data, window=window, slice_index=slice_index, frame=frame, budget=budget, draft=draft)
    except OverBudget as e:
        raise TooLarge(_named(e, what), e.budget) from None
    except (ValueError, FileNotFoundError) as e:
        raise BadInput(_named(e, what)) from None
    image = out.image
    if max(image.size) > MAX_ASPECT * min(image.size):
        raise BadInput(f"{what}: {image.width}x{image.height} is more than {MAX_ASPECT}:1, the most Qwen3-VL's "
                       "processor accepts; crop or pad it")
    return DecodedImage(image, out.format, out.info)


def _named(error: Exception, what: str) -> str:
    """The decoder's message about "<bytes>" told about the request field instead."""
    text = str(error)
    return text.replace("<bytes>", what, 1) if text.startswith("<bytes>") else f"{what}: {text}"


def parse_window(value) -> tuple[float, float] | None:
    """API window (null, a preset name, [centre, width] or "centre,width") through
    medmo.imaging's parser; BadInput instead of its ValueError."""
    try:
        return _parse_window(value)
    except ValueError as e:
        raise BadInput(str(e)) from None
