"""The request body every image endpoint shares: the image and how to decode it.

Its own module so that api.py (the task endpoints) and web.py (the page's preview) both
build on it without importing each other.
"""
from __future__ import annotations

import math

from pydantic import BaseModel, Field, FiniteFloat, field_validator

MAX_INDEX = 2**31 - 1  # slice and frame indices: larger ones cannot exist (and overflow C integers)


class ImageBody(BaseModel):
    image: str = Field(description="data URL or base64 of PNG/JPEG/TIFF/DICOM/NIfTI bytes")
    window: str | list[FiniteFloat] | None = Field(None, description='DICOM/NIfTI window: preset name or [centre, width]')
    slice_index: int | None = Field(None, ge=0, le=MAX_INDEX, description="NIfTI slice (default: middle)")
    frame: int | None = Field(None, ge=0, le=MAX_INDEX, description="multi-frame DICOM frame / 4-D NIfTI volume")
    max_new_tokens: int | None = Field(None, ge=1, description="at most the server's max_request_tokens")

    @field_validator("window")
    @classmethod
    def _finite_window(cls, value):
        """'centre,width' must hold finite numbers, as [centre, width] does (FiniteFloat)."""
        if isinstance(value, str) and "," in value:
            try:
                numbers = [float(v) for v in value.split(",")]
            except ValueError:
                return value  # parse_window names the problem
            if not all(math.isfinite(v) for v in numbers):
                raise ValueError(f"window values must be finite numbers, got {value!r}")
        return value
