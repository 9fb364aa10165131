"""A folder holding one DICOM series (a CT or MR volume as one file per slice) -> a slice or a montage.

Slices are ordered by their position along the slice normal (ImagePositionPatient
projected on the cross product of ImageOrientationPatient's row and column vectors,
so axial CT runs feet to head), falling back to InstanceNumber, then the file name.
Files that are not DICOM images (DICOMDIR, reports, stray text files) are skipped.
A folder mixing several series uses the largest one and logs how many it ignored; no
identifier (SeriesInstanceUID is a patient tag) is logged. Each slice then goes through
`open_dicom`, so windows, presets and de-identification behave as for single files.
With a budget, slices x Rows x Columns (from the headers) must fit max_volume_voxels
before any slice is decoded, and each header read is bounded like a single file's.
"""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from medmo.imaging.pixels import FORMATS
from medmo.imaging.limits import Budget, OverBudget

log = logging.getLogger(__name__)


def series_files(folder: Path, budget: Budget | None = None) -> list[Path]:
    """The folder's image slices in anatomical order (see the module doc)."""
    from medmo.imaging.dicom import load_dicom

    by_series: dict[str, list[tuple[tuple, Path, int]]] = defaultdict(list)
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        try:
            ds = load_dicom(p.read_bytes(), str(p), budget, stop_before_pixels=True)
            if "Rows" not in ds:
                continue
            pixels = int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0) * int(ds.get("NumberOfFrames") or 1)
            by_series[str(ds.get("SeriesInstanceUID", ""))].append((_order_key(ds, p), p, pixels))
        except OverBudget:
            raise
        except (ValueError, OSError, TypeError, KeyError, EOFError):
            continue
    if not by_series:
        raise ValueError(f"{folder}: no DICOM image in this folder; expected one DICOM series (one file per "
                         f"slice) or a single file in {FORMATS}")
    groups = sorted(by_series.values(), key=len, reverse=True)
    if len(groups) > 1:
        log.warning("%s holds %d series; using the largest (%d slices), ignoring %d other file(s)", folder.name,
                    len(groups), len(groups[0]), sum(map(len, groups[1:])))
    if budget is not None:
        budget.check("max_volume_voxels", sum(px for _, _, px in groups[0]), str(folder),
                     f"a DICOM series of {len(groups[0])} files has {sum(px for _, _, px in groups[0])} voxels")
    return [p for _, p, _ in sorted(groups[0], key=lambda g: g[0])]


def _order_key(ds, path: Path) -> tuple:
    pos, orient = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if pos is not None and orient is not None and len(pos) == 3 and len(orient) == 6:
        normal = np.cross(np.array(orient[:3], float), np.array(orient[3:], float))
        return 0, float(np.dot(normal, np.array(pos, float))), path.name
    number = ds.get("InstanceNumber")
    return (1, float(number), path.name) if number not in (None, "") else (2, 0.0, path.name)


def open_series(folder: Path, *, window: tuple[float, float] | None = None, slice_index: int | None = None,
                montage: int | None = None, budget: Budget | None = None) -> Image.Image:
    from medmo.imaging.dicom import open_dicom
    from medmo.imaging.nifti import grid

    files = series_files(folder, budget)
    n = len(files)
    if montage:
        if montage < 1:
            raise ValueError(f"{folder}: montage must be a positive number of slices, got {montage}")
        idx = sorted({int(round(k)) for k in np.linspace(0, n - 1, montage + 2)[1:-1]}) if n > 2 else list(range(n))
        tiles = [np.asarray(open_dicom(files[k].read_bytes(), str(files[k]), window=window, budget=budget))
                 for k in idx]  # each tile is charged to the budget before it is decoded
        if len({t.shape for t in tiles}) > 1:
            raise ValueError(f"{folder}: slices differ in size; a montage needs one size")
        if budget is not None:
            cols = math.ceil(math.sqrt(len(tiles)))
            budget.image(cols * tiles[0].shape[1], math.ceil(len(tiles) / cols) * tiles[0].shape[0], str(folder),
                         charge=False)  # the tiles were charged; the grid must still fit one image
        return Image.fromarray(grid(tiles), mode="RGB")
    k = n // 2 if slice_index is None else slice_index
    if not 0 <= k < n:
        raise ValueError(f"{folder}: slice_index {slice_index} out of range; the series has {n} slices")
    return open_dicom(files[k].read_bytes(), str(files[k]), window=window, budget=budget)
