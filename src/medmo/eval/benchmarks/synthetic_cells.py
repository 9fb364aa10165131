"""Synthetic cells: the demo's held-out grounding set, so any checkpoint can be scored on it.

`medmo eval --model DIR --benchmark synthetic_cells` generates (once, deterministically,
into $MEDMO_CACHE/synthetic_cells) the 128 held-out images `medmo demo` evaluates on:
64x64 microscopy-like images with one cell each, seed 1000, written by
medmo.data.synthetic. `--data` takes any folder of `*.jsonl` records written by
`medmo.data.synthetic.write_cell_set` instead (e.g. runs/demo/data with multi-cell sets).

Not a public benchmark: a smoke test of localization that needs no download. Prompt:
"Detect and localize all cells in the image."; coordinates on the 0-1000 grid; score =
set IoU (one-to-one matching; extra and missing boxes cost). Breakdown by cell count.
"""
from pathlib import Path

from medmo.config import cache_dir
from medmo.data.schema import read_records, resolve_image
from medmo.eval.benchmarks._grounding import register_grounding

N_IMAGES, IMAGE_SIZE, SEED = 128, 64, 1000  # = DemoConfig's n_eval, image_size and seed + 1000


def _generate() -> Path:
    from medmo.data.synthetic import write_cell_set
    from medmo.demo import DEMO_CELLS

    folder = cache_dir("synthetic_cells", f"s{SEED}_{IMAGE_SIZE}px_{N_IMAGES}")
    if not (folder / "eval_grounding.jsonl").exists():
        write_cell_set(folder, "eval_grounding", N_IMAGES, seed=SEED, image_size=IMAGE_SIZE, split="test",
                       style=DEMO_CELLS)
    return folder


def _load(path: Path, drops):
    records = []
    for file in sorted(path.glob("*.jsonl")) if path.is_dir() else [path]:
        for r in read_records(file):
            if r.task != "grounding":
                continue
            r.images = [str(resolve_image(p, file.parent)) for p in r.images]
            records.append(r)
    return records


register_grounding(
    "synthetic_cells", load_records=_load, make_default=_generate, groups=("n_cells",),
    expected="a folder of synthetic cell records (*.jsonl from medmo.data.synthetic.write_cell_set)",
    description="the demo's held-out synthetic cell images (generated offline); mean IoU, IoU@0.3/0.5/0.7",
)
