"""Synthetic microscopy-like images with known cells: the data of the tiny recipe and tests.

Each image is a dark, noisy field with 1..N bright elliptical cells (random size, aspect,
rotation, intensity, with a darker nucleus), drawn so cells never overlap and lie fully
inside the image. The ground truth is the box of each cell's painted pixels in whole
PIXELS (DESIGN.md), as an annotator or a mask importer gives it; the target text is
rendered once on the 0-1000 grid with `medmo.boxes.format_boxes`, like MedMO's own
grounding answers. (The ellipse's sub-pixel bounds, used before, made the grid's last
digit noise the model cannot see; whole pixels raised the demo's held-out IoU by 0.03-0.06
at equal steps: bench/RESULTS.md.)

Everything is deterministic from `seed`: image i is drawn from `numpy.random.default_rng
([seed, i])`, so the first k records are the same whether you ask for k or for 10k.

    make_cell_records(n, out_dir)      grounding: "Detect and localize all cells in the image."
    make_cell_vqa_records(n, out_dir)  verifiable VQA: count ("How many ...") and presence (yes/no)

Images go to `out_dir/images/*.png`; records name them relative to `out_dir`, and
`write_cell_set` writes `out_dir/<name>.jsonl` so paths resolve against the file's folder.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from medmo.boxes import Box, format_boxes
from medmo.data.schema import IMAGE_TOKEN, Record, write_jsonl
from medmo.model.prompts import GROUND_ALL_CELLS

logger = logging.getLogger(__name__)

SOURCE = "synthetic_cells"
LABEL = "cell"
COUNT_PROMPT = "How many cells are in the image? Answer with a single word or number."
PRESENCE_PROMPT = "Is there a cell in the image? Please answer yes or no."


@dataclass(frozen=True)
class CellStyle:
    """How the cells look; the defaults give clearly visible cells of varied size and shape."""

    min_radius: float = 0.06  # semi-axis bounds, as a fraction of the image side
    max_radius: float = 0.2
    max_aspect: float = 2.0  # longest / shortest semi-axis
    min_intensity: int = 120  # cell body brightness (0-255), background is ~20-50
    max_intensity: int = 240
    noise: float = 12.0  # std of the Gaussian pixel noise


# The demo's cells and the synthetic_cells benchmark's: 10-25% of the image side, so at 64 px
# a one-pixel error still leaves a high IoU.
DEMO_CELLS = CellStyle(min_radius=0.1, max_radius=0.25)
# The demo's held-out one-cell set at its defaults (DemoConfig's image_size and n_eval, seed
# 0 + 1000), which the synthetic_cells benchmark regenerates for any checkpoint.
DEMO_IMAGE_SIZE, DEMO_EVAL_IMAGES, DEMO_EVAL_SEED = 64, 128, 1000


def draw_cells(rng: np.random.Generator, image_size: int, n_cells: int, style: CellStyle = CellStyle()
               ) -> tuple[Image.Image, list[Box]]:
    """One RGB image with up to `n_cells` non-overlapping cells, and their pixel boxes.

    Fewer cells are drawn only when no free room is found after many tries (dense settings).
    """
    s = image_size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    background = rng.uniform(20, 50)
    img = np.full((s, s), background, dtype=np.float32)
    boxes: list[Box] = []
    placed: list[tuple[float, float, float]] = []  # (cx, cy, bounding radius) to prevent overlap
    for _ in range(n_cells):
        for _attempt in range(50):
            a = rng.uniform(style.min_radius, style.max_radius) * s
            b = a / rng.uniform(1.0, style.max_aspect)
            theta = rng.uniform(0, math.pi)
            hw = math.sqrt((a * math.cos(theta)) ** 2 + (b * math.sin(theta)) ** 2)
            hh = math.sqrt((a * math.sin(theta)) ** 2 + (b * math.cos(theta)) ** 2)
            if 2 * hw >= s - 2 or 2 * hh >= s - 2:
                continue
            cx = rng.uniform(hw + 1, s - hw - 1)
            cy = rng.uniform(hh + 1, s - hh - 1)
            if all(math.hypot(cx - px, cy - py) > a + pr + 2 for px, py, pr in placed):
                break
        else:
            break
        placed.append((cx, cy, a))
        c, sn = math.cos(theta), math.sin(theta)
        # only the cell's bounding window can change: every pixel centre inside the ellipse lies in it
        win = (slice(max(0, math.floor(cy - hh)), math.ceil(cy + hh) + 1),
               slice(max(0, math.floor(cx - hw)), math.ceil(cx + hw) + 1))
        dx, dy = xx[win] - cx, yy[win] - cy
        u = (dx * c + dy * sn) / a
        v = (-dx * sn + dy * c) / b
        r2 = u * u + v * v
        intensity = rng.uniform(style.min_intensity, style.max_intensity)
        img[win] = np.where(r2 <= 0.15, intensity * 0.55, np.where(r2 <= 1.0, intensity, img[win]))  # body, nucleus
        rows, cols = np.nonzero(r2 <= 1.0)  # the painted pixels' box, in whole pixels as a mask gives it
        boxes.append(Box(int(win[1].start + cols.min()), int(win[0].start + rows.min()),
                         int(win[1].start + cols.max() + 1), int(win[0].start + rows.max() + 1), LABEL) if rows.size else
                     Box(cx - hw, cy - hh, cx + hw, cy + hh, LABEL))
    img = img + rng.normal(0, style.noise, img.shape)
    tint = np.array([1.0, rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0)], dtype=np.float32)  # stain-like color
    rgb = np.clip(img[..., None] * tint, 0, 255).astype(np.uint8)
    # Left to right (then top to bottom), so the target text is canonical and the key that picks
    # the next box is x1, the coordinate a box's text starts with (bench/RESULTS.md: with reading
    # order the model found the right row and missed the column).
    boxes.sort(key=lambda b: (b.x1, b.y1))
    return Image.fromarray(rgb, "RGB"), boxes


def grounding_target(boxes: list[Box], width: int, height: int) -> str:
    """MedMO's answer text for pixel boxes: `cell <box>[[x1, y1, x2, y2], ...]</box>` on the grid."""
    return format_boxes([b.to_grid(width, height) for b in boxes], label=LABEL)


def _cell_count(rng: np.random.Generator, min_cells: int, max_cells: int) -> int:
    if not 0 <= min_cells <= max_cells:
        raise ValueError(f"need 0 <= min_cells <= max_cells, got {min_cells}..{max_cells}")
    return int(rng.integers(min_cells, max_cells + 1))


def _save(img: Image.Image, out_dir: Path, name: str) -> str:
    rel = f"images/{name}.png"
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    img.save(out_dir / rel, compress_level=1)  # noisy pixels: level 1 is smaller than 6 and 3x faster at 128 px
    return rel


def make_cell_records(n: int, out_dir: str | Path, seed: int = 0, image_size: int = 224, min_cells: int = 1,
                      max_cells: int = 1, split: str = "train", style: CellStyle = CellStyle()) -> list[Record]:
    """`n` grounding records ("Detect and localize all cells in the image.") with pixel boxes.

    Images are written as PNG under `out_dir/images/`; record image paths are relative to
    `out_dir`. The assistant turn is the MedMO-syntax target on the 0-1000 grid.
    """
    out = Path(out_dir)
    records = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        img, boxes = draw_cells(rng, image_size, _cell_count(rng, max(1, min_cells), max_cells), style)
        rid = f"{SOURCE}/{split}/s{seed}_{i}"
        rel = _save(img, out, f"ground_s{seed}_{i}")
        records.append(Record(
            id=rid, source=SOURCE, split=split, task="grounding", modality="microscopy", images=[rel],
            messages=[{"role": "user", "content": IMAGE_TOKEN + GROUND_ALL_CELLS},
                      {"role": "assistant", "content": grounding_target(boxes, image_size, image_size)}],
            answer={"boxes": [b.to_record() for b in boxes], "image_size": [image_size, image_size]},
            meta={"seed": seed, "index": i, "n_cells": len(boxes)},
        ))
    return records


def make_cell_vqa_records(n: int, out_dir: str | Path, seed: int = 0, image_size: int = 224, min_cells: int = 0,
                          max_cells: int = 3, split: str = "train", style: CellStyle = CellStyle()) -> list[Record]:
    """`n` closed VQA records about synthetic images: even indexes ask the count, odd ones presence.

    Answers are verifiable: the count as a number ("2"), presence as "yes"/"no"; when
    `min_cells` is 0, half the presence images are empty, so "yes" and "no" are balanced.
    """
    out = Path(out_dir)
    records = []
    for i in range(n):
        rng = np.random.default_rng([seed, 1_000_003, i])  # a different stream from the grounding images
        kind = "count" if i % 2 == 0 else "presence"
        n_cells = _cell_count(rng, min_cells, max_cells)
        if kind == "presence":  # balanced yes/no: every other presence image is empty
            n_cells = 0 if i % 4 == 1 and min_cells == 0 else max(1, n_cells)
        img, boxes = draw_cells(rng, image_size, n_cells, style)
        question, text = (COUNT_PROMPT, str(len(boxes))) if kind == "count" else (
            PRESENCE_PROMPT, "yes" if boxes else "no")
        rel = _save(img, out, f"vqa_s{seed}_{i}")
        records.append(Record(
            id=f"{SOURCE}_vqa/{split}/s{seed}_{i}", source=f"{SOURCE}_vqa", split=split, task="vqa",
            modality="microscopy", images=[rel],
            messages=[{"role": "user", "content": IMAGE_TOKEN + question}, {"role": "assistant", "content": text}],
            answer={"text": text, "closed": True},
            meta={"seed": seed, "index": i, "n_cells": len(boxes), "question_type": kind},
        ))
    return records


def write_cell_set(out_dir: str | Path, name: str, n_grounding: int, n_vqa: int = 0, seed: int = 0,
                   image_size: int = 224, min_cells: int = 1, max_cells: int = 1, split: str = "train",
                   style: CellStyle = CellStyle()) -> Path:
    """Generate grounding (+ optional VQA) records and write them to `out_dir/<name>.jsonl`."""
    out = Path(out_dir)
    records = make_cell_records(n_grounding, out, seed, image_size, min_cells, max_cells, split, style)
    if n_vqa:
        records += make_cell_vqa_records(n_vqa, out, seed, image_size, 0, max_cells, split, style)
    path = out / f"{name}.jsonl"
    write_jsonl(records, path)
    logger.info("wrote %d synthetic records to %s", len(records), path)
    return path
