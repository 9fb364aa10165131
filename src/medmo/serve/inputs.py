"""Images arriving over HTTP: decode, check limits, keep patient tags out of everything.

An image field is a data URL (`data:image/png;base64,...`, what OpenAI clients send) or
bare base64 of the file's bytes: PNG, JPEG, TIFF, DICOM or NIfTI, decoded by
`medmo.imaging.open_image` from BYTES only. Paths and URLs are refused with a message
saying what to send instead: the server never reads its own files or fetches anything.

Limits: the pixel cap is checked on the header before decoding (PIL and DICOM headers
give the size without decoding) and again after, so a decompression bomb is refused
cheaply. DICOM: patient-identifying values (medmo.imaging.PATIENT_TAGS) are read from
the header only to be redacted from any error message; the metadata a response may
carry comes from the de-identified dataset (`deidentify` + `dicom_info`).
Every problem raises `BadInput` (a ValueError), which the API turns into HTTP 400.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field

from PIL import Image

from medmo.imaging import FORMATS, PATIENT_TAGS, deidentify, dicom_info, open_image
from medmo.imaging.core import sniff

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w-]+=[\w.+-]+)*)(;base64)?,", re.I)
_URL_OR_PATH = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|file:|~|\.{1,2}/|[a-z]:\\)", re.I)
_B64_WS = re.compile(rb"\s+")
MAX_ASPECT = 200  # Qwen2/3-VL's smart_resize refuses more elongated images


class BadInput(ValueError):
    """A request the server refuses with 400 (the message says what to send instead)."""


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


def decode_image(data: bytes, *, max_pixels: int, window=None, slice_index: int | None = None,
                 frame: int | None = None, what: str = "image") -> DecodedImage:
    """File bytes -> RGB image, within the pixel cap; BadInput naming the problem."""
    kind = sniff(data, "")
    secrets: list[str] = []
    info: dict = {}
    if kind == "dicom":
        secrets, info, pixels = _dicom_header(data, what)
    elif kind == "raster":
        pixels = _raster_pixels(data, what)
    else:
        pixels = 0  # NIfTI: the slice's size is known only after decoding (checked below)
    _check_pixels(pixels, max_pixels, what)
    try:
        image = open_image(data, window=window, slice_index=slice_index, frame=frame)
    except (ValueError, FileNotFoundError) as e:
        raise BadInput(redact(f"{what}: {e}".replace("<bytes>: ", ""), secrets)) from None
    _check_pixels(image.width * image.height, max_pixels, what)
    if max(image.size) > MAX_ASPECT * min(image.size):
        raise BadInput(f"{what}: {image.width}x{image.height} is more than {MAX_ASPECT}:1, the most Qwen3-VL's "
                       "processor accepts; crop or pad it")
    return DecodedImage(image, kind, info)


def _check_pixels(pixels: int, max_pixels: int, what: str) -> None:
    if pixels > max_pixels:
        raise BadInput(f"{what}: {pixels} pixels is over the server's cap of {max_pixels} pixels "
                       f"(max_image_pixels); downscale it or start the server with a larger cap")


def _raster_pixels(data: bytes, what: str) -> int:
    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            return im.width * im.height
    except Image.DecompressionBombError as e:
        raise BadInput(f"{what}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any undecodable header is the client's file, reported as such
        raise BadInput(f"{what}: unsupported or corrupt file ({type(e).__name__}); expected {FORMATS}") from None


def _dicom_header(data: bytes, what: str) -> tuple[list[str], dict, int]:
    """(patient values to redact, de-identified info, pixels of one frame) from the header."""
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    except Exception as e:  # noqa: BLE001 - a broken header is the client's file
        raise BadInput(f"{what}: not a readable DICOM file ({type(e).__name__}); expected {FORMATS}") from None
    secrets = _patient_values(ds)
    info = dicom_info(deidentify(ds))
    try:
        pixels = int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0)
    except (TypeError, ValueError):
        pixels = 0
    return secrets, info, pixels


def _patient_values(ds) -> list[str]:
    values = []
    for elem in ds.iterall():
        if elem.keyword in PATIENT_TAGS and elem.VR != "SQ" and elem.value not in (None, ""):
            text = str(elem.value).strip()
            if len(text) >= 3:
                values.extend({text, text.replace("^", " ")})
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "[redacted]")
    return text


def parse_window(value) -> str | tuple[float, float] | None:
    """API window: null, a preset name, [centre, width] or "centre,width"."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and "," in value:
        value = value.split(",")
    if isinstance(value, (list, tuple)):
        try:
            centre, width = (float(v) for v in value)
        except (TypeError, ValueError):
            raise BadInput(f"window must be a preset name or [centre, width], got {value!r}") from None
        if not width > 0:
            raise BadInput(f"window width must be > 0, got {width}")
        return centre, width
    if isinstance(value, str):
        return value
    raise BadInput(f"window must be a preset name or [centre, width], got {value!r}")
