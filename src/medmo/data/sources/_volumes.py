"""3-D label volumes (NIfTI) -> 2-D grounding records, one box per lesion per chosen slice
(not a source: the leading underscore keeps it out of the registry). Used by msd_liver
and kits19.

Slice rule: the lesion voxels (label values `values`) are split into 26-connected 3-D
components; each component chooses the axial slice where its cross-section is largest,
and every chosen slice becomes one record whose boxes are ALL lesion cross-sections on
it (one per 8-connected 2-D component, through medmo.data.sources.masks, under 16 px
dropped as too_small), so a lesion visible on the slice is never left unboxed. A 3-D
component whose largest cross-section is under 16 px chooses no slice and is counted
as lesion_too_small; a case without lesion voxels is no_finding.

Slices are as medmo.imaging.nifti shows them: the volume reoriented to RAS+, axial slice
k rotated by np.rot90 (anterior up, patient's right on the image's right), windowed (`window`, a CT preset) to an 8-bit PNG written once under the image
folder (content-addressed, so a re-run is idempotent). When the in-plane spacing is not
square, open_nifti resamples the slice; the mask is resized with it (nearest) so boxes
stay in the PNG's pixels.

Memory: the label volume as load_volume returns it, one bool lesion volume, and an int32
component map of the lesions' bounding region only; the CT's inflated bytes are held
once per case and each chosen slice is cut from them, so a case costs about two volumes.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from medmo.data.schema import Record
from medmo.data.sources import Drops
from medmo.data.sources._qa import save_image
from medmo.data.sources.masks import MIN_COMPONENT_AREA, mask_record
from medmo.imaging.nifti import load_volume, open_nifti
from medmo.model.prompts import GROUND_ALL


def chosen_slices(lesion: np.ndarray, min_area: int = MIN_COMPONENT_AREA) -> tuple[list[int], list[int]]:
    """(sorted axial slices chosen, [largest areas of components too small]) for an (x, y, z)
    bool volume: each 26-connected component's slice of largest cross-section."""
    from scipy import ndimage

    if not lesion.any():
        return [], []
    spans = [np.flatnonzero(lesion.any(axis=tuple(a for a in range(3) if a != d))) for d in range(3)]
    box = tuple(slice(int(s[0]), int(s[-1]) + 1) for s in spans)
    comps, n = ndimage.label(lesion[box], structure=np.ones((3, 3, 3), dtype=bool))
    areas = np.stack([np.bincount(comps[:, :, z].ravel(), minlength=n + 1) for z in range(comps.shape[2])])[:, 1:]
    best, peak = areas.argmax(axis=0), areas.max(axis=0)
    chosen = sorted({int(z) + box[2].start for z, a in zip(best, peak) if a >= min_area})
    return chosen, [int(a) for a in peak if a < min_area]


def read_bytes(path: Path) -> bytes:
    """A .nii or .nii.gz file's NIfTI bytes, inflated once (so each slice cut from it is cheap)."""
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def volume_records(*, image: Path, labels: Path, values: tuple[int, ...], case: str, source: str, split: str,
                   label: str, target: str, window: tuple[float, float], folder: Path,
                   drops: Drops) -> Iterator[Record]:
    """The records of one case (CT `image`, label volume `labels`); see the module docstring.
    Counted: label_missing, image_missing, volume_unreadable (not NIfTI, truncated)."""
    for path, reason in ((labels, "label_missing"), (image, "image_missing")):
        if not path.is_file():
            drops.add(reason, f"{case}: {path.name}")
            return
    try:
        lab = load_volume(read_bytes(labels), labels.name)[0]
    except (OSError, EOFError, ValueError) as e:
        drops.add("volume_unreadable", f"{case}: {e}")
        return
    lesion = np.isin(lab, values)
    del lab
    slices, small = chosen_slices(lesion)
    for area in small:
        drops.add("lesion_too_small", f"{case}: a lesion of at most {area} px per slice")
    if not slices:
        drops.add("no_finding", case)
        return
    try:
        ct = read_bytes(image)
        ims = {k: open_nifti(ct, image.name, window=window, slice_index=k, plane="axial") for k in slices}
    except (OSError, EOFError, ValueError) as e:
        drops.add("volume_unreadable", f"{case}: {e}")
        return
    del ct
    for k, im in ims.items():
        mask = np.rot90(lesion[:, :, k])
        if mask.shape[::-1] != im.size:
            mask = np.asarray(Image.fromarray(mask).resize(im.size, Image.NEAREST))
        path = save_image(im.convert("L"), folder, f"{case}_z{k:04d}")
        rec = mask_record(mask=mask, size=im.size, rid=f"{source}/{split}/{case}/z{k:04d}", source=source,
                          split=split, modality="ct", image=path, label=label, prompt=GROUND_ALL.format(target=target),
                          drops=drops, meta={"case": case, "slice_index": k, "plane": "axial", "window": list(window)})
        if rec is not None:
            yield rec
