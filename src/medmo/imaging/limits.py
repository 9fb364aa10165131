"""Budgets for decoding untrusted images, checked on headers before any large allocation.

A small file can ask for a lot of memory: a 290 KB .nii.gz of zeros declares a
2000x1500x100 volume (1.2 GB as float32), a 200 KB deflated DICOM inflates to hundreds of
MB, eight 6000x6600 PNGs fit in 400 KB. So every decoder here reads the sizes from the
header (PNG/TIFF size, DICOM Rows/Columns/NumberOfFrames, NIfTI dims and datatype, the
number of files of a series) and asks a `Budget` before it inflates or decodes anything:

    max_image_pixels        one decoded image: a frame, a slice, a montage
    max_request_pixels      all images (and montage tiles) of one request together
    max_volume_voxels       a NIfTI volume, a multi-frame DICOM, a DICOM series folder
    max_decompressed_bytes  what gzip (.nii.gz) or deflate (deflated DICOM) may inflate to

`medmo serve` makes one `Budget` per HTTP request and `medmo infer` one per call, both
from their config fields of the same names; a library caller that passes no budget gets
no limits (training and evaluation read trusted files). Over budget raises `OverBudget`,
a ValueError whose message names the budget and says how to raise it.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Limits:
    """What one request may decode; None: no limit. The defaults are `medmo serve`'s and `medmo infer`'s."""

    max_image_pixels: int | None = 40_000_000  # one image; a 6000x6600 photo is 39.6 MP
    max_request_pixels: int | None = 80_000_000  # two images at the per-image cap, or twenty 4 MP X-rays
    max_volume_voxels: int | None = 134_217_728  # 512^3: a large CT; 256 MB as int16, 512 MB as float32
    max_decompressed_bytes: int | None = 335_544_320  # 320 MiB: the int16 volume above (256 MiB), inflated
    # how a user raises a budget: {field} is the field's name, {flag} the same with dashes
    raise_with: str = "raise it with Limits({field}=N)"


class OverBudget(ValueError):
    """A decode refused because it would exceed one of `Limits`' budgets (`budget` names it)."""

    def __init__(self, message: str, budget: str, limit: int, needed: int):
        super().__init__(message)
        self.budget, self.limit, self.needed = budget, limit, needed


UNITS = {"max_image_pixels": "pixels", "max_request_pixels": "pixels", "max_volume_voxels": "voxels",
         "max_decompressed_bytes": "bytes"}


class Budget:
    """One request's budget: the limits, and the pixels its images have already taken."""

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()
        self.pixels = 0

    def check(self, budget: str, needed: int, what: str, desc: str) -> None:
        """OverBudget when `needed` exceeds the `budget` field of the limits."""
        limit = getattr(self.limits, budget)
        if limit is not None and needed > limit:
            how = self.limits.raise_with.format(field=budget, flag=budget.replace("_", "-"))
            raise OverBudget(f"{what}: {desc}, over the cap of {limit} {UNITS[budget]} ({budget}); {how}",
                             budget, limit, needed)

    def image(self, width: int, height: int, what: str, *, charge: bool = True) -> None:
        """An image about to be decoded or built: the per-image cap, then (charged) the request's total."""
        pixels = int(width) * int(height)
        self.check("max_image_pixels", pixels, what, f"a {width}x{height} image has {pixels} pixels")
        if charge:
            self.check("max_request_pixels", self.pixels + pixels, what,
                       f"with this {width}x{height} image the request's images have {self.pixels + pixels} pixels")
            self.pixels += pixels

    def volume(self, shape: tuple[int, ...], what: str, kind: str = "volume") -> None:
        voxels = math.prod(int(s) for s in shape)
        dims = "x".join(str(int(s)) for s in shape)
        self.check("max_volume_voxels", voxels, what, f"a {dims} {kind} has {voxels} voxels")

    def inflate(self, nbytes: int, what: str, kind: str, *, counted: bool = False) -> None:
        """`kind` ("a .nii.gz") inflating to `nbytes`, as its header declares, or as `inflated_size`
        counted (which stops past the limit: then "more than")."""
        limit = self.limits.max_decompressed_bytes
        size = f"more than {limit}" if counted and limit is not None and nbytes > limit else str(nbytes)
        self.check("max_decompressed_bytes", nbytes, what, f"{kind} inflates to {size} bytes")


def inflate(data: bytes | memoryview, size: int, *, wbits: int, what: str) -> bytes:
    """The first `size` bytes `data` inflates to (gzip: wbits=31, raw deflate: -15); never more.
    A stream that ends early gives fewer bytes; ValueError naming `what` for a corrupt stream."""
    out, d, rest = [], None, memoryview(data)
    got = 0
    try:
        while got < size and len(rest):
            d = zlib.decompressobj(wbits)
            piece = d.decompress(rest, size - got)
            out.append(piece)
            got += len(piece)
            if wbits != 31 or not d.eof or not bytes(d.unused_data[:2]) == GZIP_MAGIC:
                break
            rest = memoryview(d.unused_data)  # a further gzip member (rare, but gzip allows it)
    except zlib.error as e:
        raise ValueError(f"{what}: corrupt {'gzip' if wbits == 31 else 'deflate'} stream ({e})") from None
    return out[0] if len(out) == 1 else b"".join(out)


def inflated_size(data: bytes | memoryview, limit: int, *, wbits: int, what: str, chunk: int = 1 << 20) -> int:
    """How many bytes `data` inflates to, counted in `chunk`-sized pieces and stopping past `limit`
    (so a bomb is measured with about 1 MB of memory, never inflated whole)."""
    d, total, view = zlib.decompressobj(wbits), 0, memoryview(data)
    try:
        for start in range(0, len(view), 1 << 16):  # input in 64 KB slices: unconsumed_tail stays small
            pending = view[start:start + (1 << 16)]
            while len(pending) and total <= limit and not d.eof:
                total += len(d.decompress(pending, chunk))
                pending = d.unconsumed_tail
            if total > limit or d.eof:
                return total
        return total + len(d.flush())
    except zlib.error as e:
        raise ValueError(f"{what}: corrupt {'gzip' if wbits == 31 else 'deflate'} stream ({e})") from None
