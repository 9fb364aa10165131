"""NIfTI-1/2 (.nii, .nii.gz) volume -> one RGB slice or a montage of slices.

The volume is first reoriented to the closest canonical RAS+ orientation, so "axial",
"coronal" and "sagittal" mean the anatomical planes whatever the scanner's storage
order. Slices are shown in neurological convention (patient's right on the image's
right), superior / anterior at the top, and resampled to the physical pixel aspect so
thick-slice coronal and sagittal views are not squashed.

Without a window the grey range is the volume's 0.5-99.5th percentile, the same for
every slice of a volume, so a montage's slices are comparable; CT volumes in Hounsfield
units take the same presets as DICOM (`window="brain"`). 4-D series choose the volume
with `frame` (default the first). Analyze-style .hdr/.img pairs are not supported.
"""
from __future__ import annotations

import gzip
import math
import struct

import numpy as np
from PIL import Image

from medmo.imaging.core import FORMATS, window_to_uint8

PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}


def load_volume(data: bytes, name: str, frame: int | None = None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(x, y, z) float32 volume in RAS+ orientation and its voxel sizes in mm."""
    import nibabel as nib

    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError) as e:
        raise ValueError(f"{name}: corrupt gzip stream ({e}); expected {FORMATS}") from e
    size = struct.unpack("<i", raw[:4])[0] if len(raw) >= 4 else 0
    if size not in (348, 540):
        size = struct.unpack(">i", raw[:4])[0] if len(raw) >= 4 else 0
    if size not in (348, 540):
        raise ValueError(f"{name}: no NIfTI header (sizeof_hdr must be 348 or 540); expected {FORMATS}")
    cls = nib.Nifti2Image if size == 540 else nib.Nifti1Image
    img = cls.from_bytes(raw)
    shape = img.shape
    if len(shape) > 4 or len(shape) < 2:
        raise ValueError(f"{name}: NIfTI of shape {shape}; expected a 2-D, 3-D or 4-D image")
    if len(shape) == 4:
        t = 0 if frame is None else frame
        if not 0 <= t < shape[3]:
            raise ValueError(f"{name}: frame (volume) {frame} out of range; it has {shape[3]} volume(s)")
        img = img.slicer[..., t]
    elif frame not in (None, 0):
        raise ValueError(f"{name}: frame {frame} given but the NIfTI has a single volume of shape {shape}")
    if len(img.shape) == 2:
        img = img.__class__(np.asanyarray(img.dataobj)[..., None], img.affine, img.header)
    img = nib.as_closest_canonical(img)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return img.get_fdata(dtype=np.float32), zooms


def open_nifti(data: bytes, name: str, *, window: tuple[float, float] | None = None, slice_index: int | None = None,
               plane: str = "axial", frame: int | None = None, montage: int | None = None) -> Image.Image:
    if plane not in PLANES:
        raise ValueError(f"{name}: plane {plane!r} is not one of {', '.join(PLANES)}")
    vol, zooms = load_volume(data, name, frame)
    axis = PLANES[plane]
    n = vol.shape[axis]
    if window is None:
        lo, hi = np.percentile(vol[np.isfinite(vol)], [0.5, 99.5]) if vol.size else (0.0, 1.0)
        window = ((lo + hi) / 2, max(hi - lo, 1e-6))
    # in-plane voxel sizes of the displayed (rows, cols) after rot90: rows run along the
    # last remaining axis, cols along the first
    rest = [a for a in range(3) if a != axis]
    row_mm, col_mm = zooms[rest[1]], zooms[rest[0]]
    if montage:
        if montage < 1:
            raise ValueError(f"{name}: montage must be a positive number of slices, got {montage}")
        idx = sorted({int(round(k)) for k in np.linspace(0, n - 1, montage + 2)[1:-1]}) if n > 2 else list(range(n))
        tiles = [_slice(vol, axis, k, window) for k in idx]
        return _physical(grid(tiles), row_mm, col_mm)
    k = n // 2 if slice_index is None else slice_index
    if not 0 <= k < n:
        raise ValueError(f"{name}: slice_index {slice_index} out of range; the {plane} plane has {n} slices")
    return _physical(_slice(vol, axis, k, window), row_mm, col_mm)


def _slice(vol: np.ndarray, axis: int, k: int, window) -> np.ndarray:
    return window_to_uint8(np.rot90(np.take(vol, k, axis=axis)), window)


def grid(tiles: list[np.ndarray]) -> np.ndarray:
    """Equal-sized uint8 tiles (greyscale or RGB) in a near-square grid, row by row."""
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    h, w = tiles[0].shape[:2]
    out = np.zeros((rows * h, cols * w) + tiles[0].shape[2:], dtype=np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = t
    return out


def _physical(arr8: np.ndarray, row_mm: float, col_mm: float) -> Image.Image:
    im = Image.fromarray(np.ascontiguousarray(arr8), mode="L")
    if row_mm > 0 and col_mm > 0 and not math.isclose(row_mm, col_mm, rel_tol=0.05):
        unit = min(row_mm, col_mm)
        im = im.resize((max(1, round(im.width * col_mm / unit)), max(1, round(im.height * row_mm / unit))),
                       Image.BILINEAR)
    return im.convert("RGB")
