"""Cell detection (MedMO's Cell set): every cell in a microscopy image, from instance
masks (medmo.data.cell). Default data: shared/data/cell_nuclei_dsb2018, a 512x512
DSB2018 fluorescence image with 125 nuclei (CC0). `--data` takes either a folder built
by `medmo data cell` (records.jsonl + images/) or a raw folder of images + instance
masks, converted on the fly (whole images, no tiling).

One item per image (or tile): "Detect and localize all cells in the image."
Coordinates: grid (MedMO/Qwen3-VL), compared in pixels; score = set IoU over all cells
(one-to-one Hungarian matching, extra and missing boxes cost). With one dense image the
per-item IoU says little: the aggregate carries the detection metrics of
medmo.eval.grounding (precision / recall / F1 at IoU 0.3 / 0.5 / 0.7, micro over cells and
macro over images, count MAE), per-cell recall at IoU >= 0.5 ("cell_recall@0.5") overall
and by cell size and shape class, and every metric per stratum of the records (by_size,
by_shape, by_density, by_count: medmo.data.cell's strata), e.g. `by_count.many.f1@0.5`.
`medmo data cell --tile 128` gives images of varying cell counts from one large image.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from medmo.boxes import Box, matches_at
from medmo.data.cell import STRATA, CellConfig, build_records
from medmo.data.schema import read_records, resolve_image
from medmo.eval.benchmarks._grounding import register_grounding

HIT_IOU = 0.5


def _load(path: Path, drops):
    if (path / "records.jsonl").is_file():
        records = read_records(path / "records.jsonl")
        for r in records:
            r.images = [str(resolve_image(p, path)) for p in r.images]
        return records
    return build_records(CellConfig(masks=str(path)), drops)


def cell_hits(sample: dict, scored: dict) -> dict[str, Any]:
    """{"cell_hits": [bool per ground-truth cell]}: matched one to one at IoU >= 0.5 (the tp@0.5 matches)."""
    gt = [Box.from_record(b) for b in sample["answer"]["boxes"]]
    pred = [Box.from_list(b) for b in scored.get("parsed") or []]
    hits = [False] * len(gt)
    for _, j, _ in matches_at(pred, gt, HIT_IOU):
        hits[j] = True
    return {"cell_hits": hits}


def cell_recall(samples: list[dict]) -> dict[str, Any]:
    """Per-cell recall at IoU >= 0.5, overall and by each cell's size and shape class."""
    total, by = [0, 0], {"size": defaultdict(lambda: [0, 0]), "shape": defaultdict(lambda: [0, 0])}
    for s in samples:
        cells = (s.get("meta") or {}).get("cells") or []
        for hit, cell in zip(s.get("cell_hits") or [], cells):
            for counter in (total, by["size"][cell["size"]], by["shape"][cell["shape"]]):
                counter[0] += bool(hit)
                counter[1] += 1
    out: dict[str, Any] = {"cells": total[1], "cell_recall@0.5": total[0] / total[1] if total[1] else 0.0}
    for key, groups in by.items():
        out[f"cell_recall@0.5_by_{key}"] = {k: {"n": n, "recall": h / n} for k, (h, n) in sorted(groups.items())}
    return out


register_grounding(
    "cell", default_data="cell_nuclei_dsb2018", groups=tuple(f"strata.{k}" for k in STRATA),
    load_records=_load, extra_score=cell_hits, extra_aggregate=cell_recall,
    expected="a `medmo data cell` output folder or a folder of images + instance masks",
    description="Cell detection from instance masks; set IoU, P/R/F1@0.5, count MAE, per stratum "
                "(size/shape/density/count) and per-cell recall by size",
    size_checked="unverified: MedMO's Cell set is not published",
)
