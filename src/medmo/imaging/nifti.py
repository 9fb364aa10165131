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

Memory: the header is read first (inflating only its few hundred bytes) and the volume's
size checked against the budget (limits.py) before the rest is inflated, and then only
the bytes the header asks for. The voxels stay in their stored type (a zero-copy view of
the inflated bytes, reoriented by views); only the slices shown become float32, with the
header's scl_slope/scl_inter applied to them, so a volume costs its inflated bytes plus
one working copy for the percentiles, not 4-8 bytes per voxel.
"""
from __future__ import annotations

import math
import struct

import numpy as np
from PIL import Image

from medmo.imaging.pixels import FORMATS, window_to_uint8
from medmo.imaging.limits import GZIP_MAGIC, Budget, inflate

PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}


def read_header(data: bytes, name: str):
    """(header, image class) from the first bytes of a .nii or .nii.gz; ValueError if there is no NIfTI header."""
    import nibabel as nib
    from nibabel.spatialimages import HeaderDataError

    gz = data[:2] == GZIP_MAGIC
    head = inflate(data, 540, wbits=31, what=name) if gz else data[:540]
    size = next((s for fmt in ("<i", ">i") if len(head) >= 4 and (s := struct.unpack(fmt, head[:4])[0]) in (348, 540)),
                0)
    if not size or len(head) < size:
        raise ValueError(f"{name}: no NIfTI header (sizeof_hdr must be 348 or 540); expected {FORMATS}")
    cls = nib.Nifti2Image if size == 540 else nib.Nifti1Image
    try:
        return cls.header_class(binaryblock=head[:size]), cls
    except (HeaderDataError, ValueError, TypeError) as e:
        raise ValueError(f"{name}: invalid NIfTI header ({e})") from None


def load_volume(data: bytes, name: str, frame: int | None = None, budget: Budget | None = None
                ) -> tuple[np.ndarray, tuple[float, float, float], tuple[float, float] | None]:
    """(x, y, z) volume of STORED values in RAS+ orientation, its voxel sizes in mm, and the
    header's (slope, intercept) to apply to what is shown (None: unscaled)."""
    import nibabel as nib

    hdr, cls = read_header(data, name)
    try:
        shape, dtype = tuple(int(s) for s in hdr.get_data_shape()), hdr.get_data_dtype()
    except Exception as e:  # noqa: BLE001 - nibabel raises several types for a bad dim or datatype
        raise ValueError(f"{name}: invalid NIfTI header ({type(e).__name__}: {e})") from None
    if len(shape) > 4 or len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"{name}: NIfTI of shape {shape}; expected a 2-D, 3-D or 4-D image")
    voxels = math.prod(shape)
    offset = max(int(hdr.get_data_offset()), hdr.single_vox_offset)
    end = offset + voxels * dtype.itemsize
    gz = data[:2] == GZIP_MAGIC
    if budget is not None:
        budget.volume(shape, name, "NIfTI volume")
        if gz:
            budget.inflate(end, name, "a .nii.gz")
    if len(shape) == 4:
        t = 0 if frame is None else frame
        if not 0 <= t < shape[3]:
            raise ValueError(f"{name}: frame (volume) {frame} out of range; it has {shape[3]} volume(s)")
    elif frame not in (None, 0):
        raise ValueError(f"{name}: frame {frame} given but the NIfTI has a single volume of shape {shape}")
    raw = inflate(data, end, wbits=31, what=name) if gz else data
    if len(raw) < end:
        raise ValueError(f"{name}: truncated NIfTI: the header's {shape} {dtype} volume needs {end} bytes, "
                         f"the file has {len(raw)}")
    vol = np.frombuffer(raw, dtype=dtype, count=voxels, offset=offset).reshape(shape, order="F")
    if len(shape) == 4:
        vol = vol[..., t]
    elif len(shape) == 2:
        vol = vol[..., None]
    img = nib.as_closest_canonical(cls(vol, hdr.get_best_affine(), hdr))  # reorients by views, no copy
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    slope, inter = hdr.get_slope_inter()
    scale = None if slope is None else (float(slope), float(inter or 0.0))
    return np.asanyarray(img.dataobj), zooms, scale


def open_nifti(data: bytes, name: str, *, window: tuple[float, float] | None = None, slice_index: int | None = None,
               plane: str = "axial", frame: int | None = None, montage: int | None = None,
               budget: Budget | None = None) -> Image.Image:
    if plane not in PLANES:
        raise ValueError(f"{name}: plane {plane!r} is not one of {', '.join(PLANES)}")
    vol, zooms, scale = load_volume(data, name, frame, budget)
    axis = PLANES[plane]
    n = vol.shape[axis]
    # in-plane voxel sizes of the displayed (rows, cols) after rot90: rows run along the
    # last remaining axis, cols along the first
    rest = [a for a in range(3) if a != axis]
    row_mm, col_mm = zooms[rest[1]], zooms[rest[0]]
    h, w = vol.shape[rest[1]], vol.shape[rest[0]]
    if montage:
        if montage < 1:
            raise ValueError(f"{name}: montage must be a positive number of slices, got {montage}")
        idx = sorted({int(round(k)) for k in np.linspace(0, n - 1, montage + 2)[1:-1]}) if n > 2 else list(range(n))
    else:
        k = n // 2 if slice_index is None else slice_index
        if not 0 <= k < n:
            raise ValueError(f"{name}: slice_index {slice_index} out of range; the {plane} plane has {n} slices")
        idx = [k]
    cols = math.ceil(math.sqrt(len(idx))) if montage else 1
    size = _physical_size(cols * w, math.ceil(len(idx) / cols) * h, row_mm, col_mm)
    if budget is not None:
        budget.image(*size, name)  # what is built (grid, resampled), before any slice is made
    if window is None:
        window = _auto_window(vol, scale)
    tiles = [_slice(vol, axis, k, window, scale) for k in idx]
    return _physical(grid(tiles) if montage else tiles[0], size)


def _auto_window(vol: np.ndarray, scale: tuple[float, float] | None) -> tuple[float, float]:
    """(centre, width) spanning the volume's 0.5-99.5th percentiles of the SCALED values."""
    finite = vol if np.issubdtype(vol.dtype, np.integer) else vol[np.isfinite(vol)]
    if not finite.size:
        return 0.5, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    if scale is not None:
        lo, hi = sorted((lo * scale[0] + scale[1], hi * scale[0] + scale[1]))
    return (lo + hi) / 2, max(hi - lo, 1e-6)


def _slice(vol: np.ndarray, axis: int, k: int, window, scale) -> np.ndarray:
    values = np.rot90(np.take(vol, k, axis=axis)).astype(np.float32)
    if scale is not None:
        values = values * np.float32(scale[0]) + np.float32(scale[1])
    return window_to_uint8(values, window)


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


def _physical_size(width: int, height: int, row_mm: float, col_mm: float) -> tuple[int, int]:
    """(width, height) resampled to square pixels (the finer of the two spacings), or as it is."""
    if row_mm > 0 and col_mm > 0 and not math.isclose(row_mm, col_mm, rel_tol=0.05):
        unit = min(row_mm, col_mm)
        return max(1, round(width * col_mm / unit)), max(1, round(height * row_mm / unit))
    return width, height


def _physical(arr8: np.ndarray, size: tuple[int, int]) -> Image.Image:
    im = Image.fromarray(np.ascontiguousarray(arr8), mode="L")
    if im.size != size:
        im = im.resize(size, Image.BILINEAR)
    return im.convert("RGB")
