"""A folder of instance masks -> grounding records, one box per instance (generic importer).

For segmentation sets (microscopy nuclei, cells, bacteria, lesions) that ship masks, not
boxes. Licence/access: that of the dataset you point at. Layouts understood:

    images/x.png + masks/x.png       label images: 0 = background, k > 0 = instance k
    <id>/images/<id>.png + <id>/masks/*.png
                                     Kaggle DSB2018 / BBBC038: one binary mask per instance
    img*.tif + mask*.tif (or x.png + x_mask.png) side by side, label images
                                     (e.g. shared/data/cell_nuclei_dsb2018: img2d + mask2d)

Masks are read with tifffile (.tif/.tiff) or Pillow (8/16-bit PNG). A box is the
instance's pixel extent in continuous coordinates: pixels (rows r0..r1, cols c0..c1)
give [c0, r0, c1 + 1, r1 + 1], so a one-pixel instance has a 1x1 box. Instances smaller
than `min_area` pixels (default 1) are dropped as too_small.

One record per image; prompt "Detect and localize all <label> in the image.", boxes
labelled `label` (default "objects"/"object"). Split: "test" (masks sets rarely name one;
a parent folder named train/val/test sets it). Counted drops: image_missing,
mask_unreadable, mask_size_mismatch, image_without_boxes, too_small.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from medmo.boxes import Box
from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._grounding import grounding_record, infer_split
from medmo.model.prompts import GROUND_ALL

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def read_array(path: Path) -> np.ndarray:
    """A mask or image as a numpy array (tifffile for TIFF keeps 16-bit labels intact)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(str(path)))
    with Image.open(path) as im:
        return np.asarray(im)


def instance_boxes(labels: np.ndarray) -> list[tuple[int, Box, int]]:
    """[(instance id, pixel box, area)] for a label image, ids ascending."""
    from scipy import ndimage

    labels = np.asarray(labels)
    if labels.ndim == 3:  # an RGB-saved label image: channels carry the same ids
        labels = labels[..., 0]
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if not len(ids):
        return []
    areas = ndimage.sum_labels(np.ones(labels.shape, dtype=np.int64), labels, index=ids)
    slices = ndimage.find_objects(labels.astype(np.int64))
    out = []
    for k, area in zip(ids, areas):
        sl = slices[int(k) - 1]
        if sl is None:
            continue
        out.append((int(k), Box(float(sl[1].start), float(sl[0].start), float(sl[1].stop), float(sl[0].stop)), int(area)))
    return out


def stack_binary(mask_files: list[Path]) -> np.ndarray:
    """One label image from per-instance binary masks (DSB2018 layout): instance k = file k."""
    labels = None
    for k, f in enumerate(mask_files, 1):
        m = read_array(f)
        m = m[..., 0] if m.ndim == 3 else m
        labels = np.zeros(m.shape, dtype=np.int32) if labels is None else labels
        labels[m > 0] = k
    return labels if labels is not None else np.zeros((0, 0), dtype=np.int32)


def find_pairs(root: Path) -> list[tuple[str, Path | None, list[Path]]]:
    """[(name, image or None, mask files)]: one mask file = a label image, several = binary masks."""
    pairs: list[tuple[str, Path | None, list[Path]]] = []
    if (root / "images").is_dir() and (root / "masks").is_dir():
        images = {p.stem: p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS}
        for m in sorted((root / "masks").iterdir()):
            if m.suffix.lower() in IMAGE_EXTS:
                pairs.append((m.stem, images.get(m.stem), [m]))
        return pairs
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if (sub / "images").is_dir() and (sub / "masks").is_dir():
            imgs = sorted(p for p in (sub / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS)
            masks = sorted(p for p in (sub / "masks").iterdir() if p.suffix.lower() in IMAGE_EXTS)
            pairs.append((sub.name, imgs[0] if imgs else None, masks))
    if pairs:
        return pairs
    files = {p.name: p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    for name, m in sorted(files.items()):
        if "mask" not in m.stem.lower():
            continue
        candidates = [m.stem.replace("mask", "img"), m.stem.replace("mask", "image"), m.stem.replace("_mask", ""),
                      m.stem.replace("mask", "")]
        image = next((p for p in files.values() if p.stem in candidates and p != m), None)
        pairs.append((image.stem if image else m.stem, image, [m]))
    return pairs


@register_source("masks", tasks=("grounding",), modality="microscopy")
def convert(raw: str | Path, drops: Drops, split: str | None = None, modality: str = "microscopy",
            label: str = "object", target: str | None = None, min_area: int = 1, source: str = "masks"
            ) -> Iterator[Record]:
    raw = require_path(raw, "a folder of instance masks (images/ + masks/, DSB2018 <id>/masks/, or img*/mask* files)")
    if not raw.is_dir():
        raise ValueError(f"{raw}: expected a folder of images and instance masks, not a file")
    pairs = find_pairs(raw)
    if not pairs:
        raise ValueError(f"{raw}: no masks found; expected images/ + masks/ label images, DSB2018 "
                         "<id>/images + <id>/masks, or files named *mask* beside their images")
    item_split = infer_split(raw.name)
    if split is not None and item_split != split:
        return
    prompt = GROUND_ALL.format(target=target or f"{label}s")
    for name, image, masks in pairs:
        with drops.guard(f"{raw.name}/{name}"):
            if image is None:
                drops.add("image_missing", f"{raw.name}/{name}")
                continue
            try:
                labels = read_array(masks[0]) if len(masks) == 1 else stack_binary(masks)
            except (OSError, ValueError) as e:
                drops.add("mask_unreadable", f"{masks[0]}: {e}")
                continue
            height, width = labels.shape[:2]
            with Image.open(image) as im:
                if im.size != (width, height):
                    drops.add("mask_size_mismatch", f"{name}: image {im.size} vs mask {(width, height)}")
                    continue
            found = instance_boxes(labels)
            kept = [(k, b, a) for k, b, a in found if a >= min_area]
            for k, _, a in found:
                if a < min_area:
                    drops.add("too_small", f"{name} instance {k}: {a} px")
            if not kept:
                drops.add("image_without_boxes", name)
                continue
            yield grounding_record(
                rid=f"{source}/{item_split}/{name}", source=source, split=item_split, modality=modality,
                images=[str(image)], prompt=prompt, boxes=[Box(*b.as_list(), label) for _, b, _ in kept],
                image_size=(width, height), meta={"instance_ids": [k for k, _, _ in kept], "areas": [a for _, _, a in kept]},
            )
