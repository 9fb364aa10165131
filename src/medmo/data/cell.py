"""The Cell detection benchmark, built from microscopy instance masks.

    medmo data cell --masks shared/data/cell_nuclei_dsb2018 --out runs/cell
    medmo data cell --masks stage1_train/ --out runs/cell_dsb --tile 256

MedMO evaluates grounding on "a Cell detection set built from microscopy instance masks"
without publishing the set; this rebuilds one from any instance-mask release (every
layout `medmo.data.sources.masks` reads). Each image (or tile) becomes one grounding
record: prompt "Detect and localize all cells in the image.", one pixel box per cell
instance, the target in MedMO grid syntax. Images are written as 8-bit PNGs (16-bit
fluorescence stretched between its 1st and 99.8th percentiles) so any model pipeline
reads them; out/records.jsonl references them relative to out/.

Strata, so a score can be read by difficulty (meta["strata"] per record, meta["cells"]
per box):
    size     equivalent diameter sqrt(4 * area / pi): small < small_diameter <= medium
             < large_diameter <= large; a record's size is that of its median cell
    shape    per cell: irregular if solidity < min_solidity, else elongated if
             eccentricity >= max_eccentricity, else round; a record's shape is the most
             common one. Eccentricity from the second central moments and solidity
             as area / pixels of the convex hull, both as scikit-image's regionprops
             defines them (computed here with numpy/scipy; equal to scikit-image 0.26's
             regionprops on all 125 DSB2018 nuclei, max difference 2e-15)
    density  cells per 10,000 px^2 of the image: sparse < sparse_density <= medium
             < dense_density <= dense
    count    cells per image (or tile), the density a detector feels: few < several_cells
             <= several < many_cells <= many; what `medmo eval` reports F1 and count error by
             (medmo.eval.benchmarks.cell), next to per-cell recall by cell size

With `tile`, images are cut into tile x tile crops; a cell cut by a tile edge is kept if
at least `min_visible` of its area is inside (its box is the visible part), else
counted as cut_by_tile_edge. Cells under `min_area` pixels are counted as too_small.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from medmo.boxes import Box
from medmo.config import make_run_dir
from medmo.data.schema import Record, write_jsonl
from medmo.data.sources import Drops
from medmo.data.sources._grounding import grounding_record
from medmo.data.sources.masks import find_pairs, instance_boxes, read_array, stack_binary
from medmo.model.prompts import GROUND_ALL_CELLS

logger = logging.getLogger(__name__)

STRATA = ("size", "shape", "density", "count")  # meta["strata"] keys of every record


@dataclass
class CellConfig:
    masks: str = field(metadata={"help": "folder of images + instance masks (images/+masks/, DSB2018 <id>/masks/, "
                                         "img*/mask* files; see medmo.data.sources.masks)"})
    out: str = field(default="runs/cell", metadata={"help": "output folder: records.jsonl, images/, report.json"})
    tile: int = field(default=0, metadata={"help": "cut images into N x N tiles, one record each (0: whole images)"})
    min_area: int = field(default=10, metadata={"help": "instances under this many pixels are not cells"})
    min_visible: float = field(default=0.5, metadata={
        "help": "with tiling: keep a cut cell if this fraction of it is in the tile"})
    split: str = field(default="test", metadata={"help": "the records' split: the Cell set is an evaluation benchmark"})
    small_diameter: float = field(default=16.0, metadata={
        "help": "px; below: 'small' (DSB2018 nuclei at 512 px: median ~24 px)"})
    large_diameter: float = field(default=24.0, metadata={"help": "px; from here: 'large'"})
    min_solidity: float = field(default=0.9, metadata={
        "help": "below: 'irregular' (lobed, touching or badly segmented)"})
    max_eccentricity: float = field(default=0.8, metadata={"help": "from here: 'elongated' (0 = circle, 1 = line)"})
    sparse_density: float = field(default=1.0, metadata={"help": "cells per 10,000 px^2; below: 'sparse'"})
    dense_density: float = field(default=3.0, metadata={"help": "from here: 'dense'"})
    several_cells: int = field(default=4, metadata={"help": "cells per image; below: 'few' (the demo's 1-3 cells)"})
    many_cells: int = field(default=16, metadata={
        "help": "from here: 'many' (DSB2018 at 512 px: 125; 256-px tiles: ~30)"})

    def __post_init__(self):
        if self.tile < 0 or self.min_area < 1 or not 0 < self.min_visible <= 1:
            raise ValueError("CellConfig: tile must be >= 0, min_area >= 1 and min_visible in (0, 1]")
        if (self.small_diameter > self.large_diameter or self.sparse_density > self.dense_density
                or not 1 <= self.several_cells <= self.many_cells):
            raise ValueError("CellConfig: small_diameter <= large_diameter, sparse_density <= dense_density and "
                             "1 <= several_cells <= many_cells")


def eccentricity(rows: np.ndarray, cols: np.ndarray) -> float:
    """sqrt(1 - l2 / l1) of the pixel coordinates' covariance (regionprops' definition)."""
    if len(rows) < 2:
        return 0.0
    l2, l1 = np.linalg.eigvalsh(np.cov(np.stack([rows, cols]).astype(float), bias=True))
    return float(np.sqrt(max(0.0, 1.0 - l2 / l1))) if l1 > 0 else 0.0


def solidity(mask: np.ndarray) -> float:
    """Area / pixels whose centre lies in the convex hull of the pixels' edge midpoints
    (scikit-image's convex_hull_image with offset_coordinates=True)."""
    from scipy.spatial import ConvexHull, QhullError

    rows, cols = np.nonzero(mask)
    edges = np.concatenate([np.stack([rows + dr, cols + dc], 1) for dr, dc in ((-0.5, 0), (0.5, 0), (0, -0.5), (0, 0.5))])
    try:
        hull = ConvexHull(edges)
    except QhullError:
        return 1.0
    rr, cc = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    centres = np.stack([rr.ravel(), cc.ravel()], 1).astype(float)
    inside = np.all(centres @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-9, axis=1)
    return float(mask.sum() / max(1, inside.sum()))


def cell_shapes(labels: np.ndarray) -> dict[int, dict[str, float]]:
    """instance id -> {"area", "diameter", "eccentricity", "solidity"} for a label image."""
    from scipy import ndimage

    out = {}
    slices = ndimage.find_objects(labels.astype(np.int64))
    for k, sl in enumerate(slices, 1):
        if sl is None:
            continue
        crop = labels[sl] == k
        rows, cols = np.nonzero(crop)
        area = int(crop.sum())
        out[k] = {"area": area, "diameter": float(np.sqrt(4 * area / np.pi)),
                  "eccentricity": eccentricity(rows, cols), "solidity": solidity(crop)}
    return out


def _classes(cfg: CellConfig, shape: dict[str, float]) -> tuple[str, str]:
    d = shape["diameter"]
    size = "small" if d < cfg.small_diameter else "large" if d >= cfg.large_diameter else "medium"
    if shape["solidity"] < cfg.min_solidity:
        form = "irregular"
    elif shape["eccentricity"] >= cfg.max_eccentricity:
        form = "elongated"
    else:
        form = "round"
    return size, form


def _strata(cfg: CellConfig, cells: list[dict], width: int, height: int) -> dict[str, str]:
    median_d = float(np.median([c["diameter"] for c in cells]))
    size = "small" if median_d < cfg.small_diameter else "large" if median_d >= cfg.large_diameter else "medium"
    density = len(cells) / (width * height) * 1e4
    dens = "sparse" if density < cfg.sparse_density else "dense" if density >= cfg.dense_density else "medium"
    n = len(cells)
    count = "few" if n < cfg.several_cells else "many" if n >= cfg.many_cells else "several"
    return {"size": size, "shape": Counter(c["shape"] for c in cells).most_common(1)[0][0], "density": dens,
            "count": count}


def to_uint8(img: np.ndarray) -> np.ndarray:
    """8-bit image for a PNG: 8-bit passes through, anything else is stretched (1st-99.8th pct)."""
    if img.dtype == np.uint8:
        return img
    lo, hi = np.percentile(img, [1, 99.8])
    scaled = (img.astype(np.float64) - lo) / max(hi - lo, 1e-9)
    return (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)


def _tiles(width: int, height: int, tile: int) -> list[tuple[int, int, int, int]]:
    if not tile:
        return [(0, 0, width, height)]
    return [(x, y, min(x + tile, width), min(y + tile, height)) for y in range(0, height, tile) for x in range(0, width, tile)]


def build_records(cfg: CellConfig, drops: Drops, image_dir: Path | None = None) -> list[Record]:
    """Cell records from cfg.masks. Images are written to image_dir as PNG (paths relative to
    its parent); without image_dir (no tiling only) records point at the original images."""
    if image_dir is None and cfg.tile:
        raise ValueError("tiling writes crops: give an image folder (medmo data cell --out DIR)")
    root = Path(cfg.masks)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; expected images and instance masks (see medmo.data.cell)")
    pairs = find_pairs(root)
    if not pairs:
        raise ValueError(f"{root}: no instance masks found (images/+masks/, <id>/masks/*.png, or *mask* files)")
    records = []
    for name, image, mask_files in tqdm(pairs, desc="cell images", disable=len(pairs) < 10):
        if image is None:
            drops.add("image_missing", name)
            continue
        labels = read_array(mask_files[0]) if len(mask_files) == 1 else stack_binary(mask_files)
        labels = labels[..., 0] if labels.ndim == 3 else labels
        pixels = read_array(image)
        height, width = labels.shape
        if pixels.shape[:2] != (height, width):
            drops.add("mask_size_mismatch", f"{name}: image {pixels.shape[:2]} vs mask {(height, width)}")
            continue
        shapes = cell_shapes(labels)
        for x0, y0, x1, y1 in _tiles(width, height, cfg.tile):
            tile_name = name if not cfg.tile else f"{name}_x{x0}_y{y0}"
            boxes, cells = [], []
            for k, box, area in instance_boxes(labels[y0:y1, x0:x1]):
                shape = shapes[k]
                if shape["area"] < cfg.min_area:
                    drops.add("too_small", f"{name} cell {k}: {shape['area']} px")
                    continue
                if area / shape["area"] < cfg.min_visible:
                    drops.add("cut_by_tile_edge", f"{tile_name} cell {k}: {area}/{shape['area']} px inside")
                    continue
                size, form = _classes(cfg, shape)
                boxes.append(Box(*box.as_list(), "cell"))
                cells.append({"id": k, **{key: round(v, 4) for key, v in shape.items()}, "size": size, "shape": form})
            if not boxes:
                drops.add("image_without_cells", tile_name)
                continue
            if image_dir is None:
                image_ref = str(image)
            else:
                Image.fromarray(to_uint8(pixels[y0:y1, x0:x1])).save(image_dir / f"{tile_name}.png")
                image_ref = f"{image_dir.name}/{tile_name}.png"
            w, h = x1 - x0, y1 - y0
            records.append(grounding_record(
                rid=f"cell/{cfg.split}/{tile_name}", source="cell", split=cfg.split, modality="microscopy",
                images=[image_ref], prompt=GROUND_ALL_CELLS, boxes=boxes, image_size=(w, h),
                meta={"strata": _strata(cfg, cells, w, h), "cells": cells, "source_image": str(image),
                      "tile": [x0, y0, x1, y1]},
            ))
    return records


def run(cfg: CellConfig) -> Path:
    """Build the benchmark into cfg.out: records.jsonl, images/*.png, report.json, config.yaml."""
    if not Path(cfg.masks).is_dir():  # before the run folder exists: a wrong path leaves nothing behind
        raise FileNotFoundError(f"{cfg.masks} is not a folder; expected images and instance masks (see medmo.data.cell)")
    out = make_run_dir(cfg.out, cfg)
    image_dir = out / "images"
    image_dir.mkdir(exist_ok=True)
    drops = Drops()
    records = build_records(cfg, drops, image_dir)
    write_jsonl(records, out / "records.jsonl")
    report = {
        "records": len(records), "cells": sum(len(r.answer["boxes"]) for r in records),
        "strata": {k: dict(Counter(r.meta["strata"][k] for r in records)) for k in STRATA},
        "cells_by_size": dict(Counter(c["size"] for r in records for c in r.meta["cells"])),
        "cells_by_shape": dict(Counter(c["shape"] for r in records for c in r.meta["cells"])),
        "dropped": drops.to_dict(),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    logger.info("cell benchmark: %d records, %d cells -> %s", report["records"], report["cells"], out)
    return out
