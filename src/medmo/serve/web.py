"""The web page of `medmo serve`: upload an image, ask, see the answer and boxes drawn.

GET / serves static/index.html (plain HTML and JavaScript, no build step). The page
sends the uploaded file's bytes as a data URL; POST /v1/preview converts it with
`medmo.imaging` (DICOM, NIfTI, 16-bit rasters) and returns a PNG to show, the image's
size, and for DICOM its de-identified metadata and the window presets, so the page can
re-request the preview with another window. The tasks then go to /v1/vqa, /v1/report
and /v1/ground (api.py) with the same image and window, and the page draws the returned
pixel boxes as SVG elements over the image.
"""
from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from medmo.imaging import WINDOW_PRESETS
from medmo.serve.bodies import ImageBody
from medmo.serve.inputs import decode_image, image_bytes, parse_window

router = APIRouter()
STATIC = Path(__file__).parent / "static"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


def _png_data_url(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@router.post("/v1/preview")
async def preview(body: ImageBody, request: Request):
    """{image, window?, slice_index?, frame?} -> {image: PNG data URL, width, height, format, dicom, presets}."""
    cfg = request.app.state.cfg
    window = parse_window(body.window)

    def work():  # base64, image and PNG coding off the event loop
        img = decode_image(image_bytes(body.image), budget=cfg.image_budget(), window=window,
                           slice_index=body.slice_index, frame=body.frame)
        return img, _png_data_url(img.image)

    img, png = await asyncio.to_thread(work)
    return {"image": png, "width": img.image.width,
            "height": img.image.height, "format": img.format, "dicom": img.info,
            "presets": {k: list(v) for k, v in WINDOW_PRESETS.items()}}
