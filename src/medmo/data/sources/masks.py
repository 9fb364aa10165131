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

Binary (semantic) masks of lesion sets (polyps, skin lesions, tumours, pneumothorax)
go through `component_boxes`: one box per 8-connected component of the foreground (a
pixel >= 128 in an 8-bit 0/255 mask, > 0 in a 0/1 mask, so JPEG-saved masks such as
Kvasir-SEG's lose their compression fringe), components under `MIN_COMPONENT_AREA` = 16
px (a 4x4 square: annotation specks, JPEG noise) dropped and counted as too_small.
`mask_record` builds the named sources' records from such a mask (kvasir_seg,
cvc_clinicdb, isic, busi, siim_acr, darkfield_bacteria, the 3-D slice sources).

One record per image; prompt "Detect and localize all <label> in the image.", boxes
labelled `label` (default "objects"/"object"). Split: "test" (masks sets rarely name one;
a parent folder named train/val/test sets it). Counted drops: image_missing,
mask_unreadable, mask_size_mismatch, image_without_boxes, too_small.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

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


def foreground(mask: np.ndarray) -> np.ndarray:
    """A binary mask's foreground: >= 128 where the mask is 0..255 (JPEG fringe removed), > 0 for 0/1 masks."""
    mask = np.asarray(mask)
    if mask.ndim == 3:  # RGB(A)-saved masks: the colour channels carry the same values
        mask = mask[..., :3].max(axis=2)
    if mask.dtype == bool:
        return mask
    return mask >= 128 if mask.max(initial=0) > 1 else mask > 0


MIN_COMPONENT_AREA = 16  # px; smaller components of a lesion mask are specks, not lesions


def component_boxes(mask: np.ndarray, min_area: int = MIN_COMPONENT_AREA) -> tuple[list[tuple[Box, int]], list[int]]:
    """([(box, area)] of the 8-connected foreground components with area >= min_area, [areas dropped])."""
    from scipy import ndimage

    labels, _ = ndimage.label(foreground(mask), structure=np.ones((3, 3), dtype=bool))
    found = instance_boxes(labels)
    return [(b, a) for _, b, a in found if a >= min_area], [a for _, _, a in found if a < min_area]


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from an image file's header (Pillow opens lazily; TIFF, PNG, JPEG)."""
    with Image.open(path) as im:
        return im.size


def mask_record(*, mask: np.ndarray, size: tuple[int, int], rid: str, source: str, split: str, modality: str,
                image: Path | str, label: str, prompt: str, drops: Drops, min_area: int = MIN_COMPONENT_AREA,
                meta: dict | None = None) -> Record | None:
    """A grounding record with one box per component of a binary `mask` over an image of
    `size` (width, height), or None with the reason counted: mask_size_mismatch,
    too_small (per component), no_finding (an empty mask: a normal image, kept out)."""
    height, width = np.asarray(mask).shape[:2]
    if (width, height) != tuple(size):
        drops.add("mask_size_mismatch", f"{rid}: image {tuple(size)} vs mask {(width, height)}")
        return None
    kept, small = component_boxes(mask, min_area)
    for area in small:
        drops.add("too_small", f"{rid}: component of {area} px < {min_area}")
    if not kept:
        drops.add("no_finding", rid)
        return None
    return grounding_record(
        rid=rid, source=source, split=split, modality=modality, images=[str(image)], prompt=prompt,
        boxes=[Box(*b.as_list(), label) for b, _ in kept], image_size=(width, height),
        meta={**(meta or {}), "areas": [a for _, a in kept]},
    )


def pair_records(pairs: Iterable[tuple[str, str, Path | None, list[Path]]], drops: Drops, *, source: str,
                 modality: str, label: str, target: str, split: str | None = None,
                 min_area: int = MIN_COMPONENT_AREA) -> Iterator[Record]:
    """Records of (name, split, image or None, binary mask files): the union of an image's
    masks, one box per component (`mask_record`). Counted: image_missing, mask_missing,
    mask_unreadable, plus mask_record's reasons."""
    prompt = GROUND_ALL.format(target=target)
    for name, item_split, image, masks in pairs:
        if split is not None and item_split != split:
            continue
        with drops.guard(f"{source}/{name}"):
            if image is None:
                drops.add("image_missing", name)
                continue
            if not masks:
                drops.add("mask_missing", name)
                continue
            try:
                mask = np.logical_or.reduce([foreground(read_array(m)) for m in masks])
            except (OSError, ValueError) as e:
                drops.add("mask_unreadable", f"{name}: {e}")
                continue
            rec = mask_record(mask=mask, size=image_size(image), rid=f"{source}/{item_split}/{name}", source=source,
                              split=item_split, modality=modality, image=image, label=label, prompt=prompt,
                              drops=drops, min_area=min_area, meta={"masks": [m.name for m in masks]})
            if rec is not None:
                yield rec


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
        if (sub / "masks").is_dir():  # an <id>/ with masks but no images/ is a missing image, counted
            imgs = sorted(p for p in (sub / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS) \
                if (sub / "images").is_dir() else []
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


@register_source("masks", tasks=("grounding",), modality="microscopy", importer=True,
                 licence="that of the dataset imported", url="see the module docstring (layouts understood)")
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
