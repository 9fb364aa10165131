"""Open medical images as RGB PIL images.

Minimal version (PNG/JPEG/TIFF via Pillow); DICOM and NIfTI support is added by the
data work (issue 3). Errors name the file and what was expected.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError


def open_image(path: str | Path) -> Image.Image:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image {p} does not exist")
    try:
        with Image.open(p) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"image {p} cannot be read as an image ({e}); expected PNG/JPEG/TIFF/DICOM/NIfTI") from e
