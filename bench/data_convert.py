"""`medmo data convert` at scale: records/s and peak memory, 10k vs 100k records in one run.

    .venv/bin/python bench/data_convert.py                          # 10,000 and 100,000 records
    .venv/bin/python bench/data_convert.py --sizes 10000 100000 --format parquet
    .venv/bin/python bench/data_convert.py --check-images exists    # no decoding at all

The raw "release" is a JSONL of VQA rows in a VQA-RAD-like layout plus `--images`
distinct 64x64 PNGs on disk, each referenced by many rows (100,000 rows over 500
images: ~200 questions per image, as VQA sets ask many questions of one image). Each
size is converted by the real pipeline (a registered converter -> ShardWriter ->
report.json) in its own child process, so each peak RSS is that conversion's alone.
With `--check-images decode` every image is opened by medmo.imaging; the checker caches
its verdict per path (LRU of 8,192), so each of the distinct images is decoded once and
the other references are cache hits. Records/s is wall-clock time, so it moves with
whatever else the machine runs; the memory ratio is the stable number.

Prints records/s, the peak RSS of the conversion itself (the kernel's high-water mark
is reset after imports, see bench/memory.py) and its growth over the RSS after imports
(the part that could grow with the record count), then the 100k/10k ratios. Flat
memory means ratios near 1 while the record count grows 10x.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memory import peak_mb, reset_peak


def make_release(folder: Path, n: int, n_images: int) -> Path:
    import numpy as np
    from PIL import Image

    img_dir = folder / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n_images):
        path = img_dir / f"img{i:05d}.png"
        if not path.exists():
            Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(path, compress_level=1)
    rows = folder / f"rows_{n}.jsonl"
    if not rows.exists():
        organs = ["chest", "abdomen", "head", "pelvis"]
        with rows.open("w") as f:
            for i in range(n):
                closed = i % 2 == 0
                f.write(json.dumps({
                    "qid": i, "image_name": f"img{i % n_images:05d}.png", "organ": organs[i % 4],
                    "question": f"Is there evidence of an abnormality in the {organs[i % 4]} (case {i})?",
                    "answer": "yes" if closed and i % 4 == 0 else ("no" if closed else f"finding number {i % 97}"),
                    "answer_type": "CLOSED" if closed else "OPEN"}) + "\n")
            f.write("{broken json\n")  # one malformed row, counted in report.json
    return rows


def child(rows: Path, out: Path, fmt: str, check: str) -> dict:
    """Runs in a fresh process: register the synthetic source, convert, report speed and memory."""
    from medmo.data.convert import ConvertConfig, run
    from medmo.data.schema import Record
    from medmo.data.sources import register_source

    @register_source("bench_synthetic", tasks=("vqa",), modality="ct")
    def convert(raw, drops, split=None):
        raw = Path(raw)
        with raw.open() as f:
            for line_no, line in enumerate(f, 1):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    drops.add("malformed_row", f"{raw.name}:{line_no}")
                    continue
                image = str(raw.parent / "images" / row["image_name"])
                yield Record(
                    id=f"bench_synthetic/test/{row['qid']}", source="bench_synthetic", split="test", task="vqa",
                    modality="ct", images=[image],
                    messages=[{"role": "user", "content": "<image>\n" + row["question"]},
                              {"role": "assistant", "content": row["answer"]}],
                    answer={"text": row["answer"], "closed": row["answer_type"] == "CLOSED"},
                    meta={"question": row["question"], "organ": row["organ"]})

    import pyarrow.parquet  # noqa: F401  (imported before the baseline: the writer and checker use them)

    import medmo.imaging  # noqa: F401

    rss_after_imports = reset_peak()
    t0 = time.perf_counter()
    run(ConvertConfig(source="bench_synthetic", raw=str(rows), out=str(out), format=fmt, check_images=check))
    seconds = time.perf_counter() - t0
    report = json.loads((out / "report.json").read_text())
    return {"kept": report["kept"], "dropped": report["dropped"]["by_reason"], "seconds": seconds,
            "peak_rss_mb": peak_mb(), "rss_after_imports_mb": rss_after_imports}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--images", type=int, default=500, help="distinct PNGs referenced by the rows")
    ap.add_argument("--format", default="jsonl", choices=("jsonl", "parquet"))
    ap.add_argument("--check-images", default="decode", choices=("none", "exists", "decode"))
    ap.add_argument("--workdir", default=None, help="keep the release and outputs here (default: a temp dir)")
    ap.add_argument("--child", nargs=2, metavar=("ROWS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), Path(args.child[1]), args.format, args.check_images)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        results = {}
        for n in args.sizes:
            t0 = time.perf_counter()
            rows = make_release(work / "release", n, args.images)
            made = time.perf_counter() - t0
            proc = subprocess.run([sys.executable, __file__, "--child", str(rows), str(work / f"out_{n}"),
                                   "--format", args.format, "--check-images", args.check_images],
                                  capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"conversion of {n} records failed:\n{proc.stderr[-3000:]}")
            r = results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
            growth = r["peak_rss_mb"] - r["rss_after_imports_mb"]
            print(f"{n:>8,} records ({args.format}, check_images={args.check_images}): "
                  f"{r['kept'] / r['seconds']:>8,.0f} records/s  ({r['seconds']:.1f} s; release written in {made:.1f} s)  "
                  f"peak RSS {r['peak_rss_mb']:.1f} MB  (+{growth:.1f} MB over {r['rss_after_imports_mb']:.1f} MB "
                  f"after imports)  kept {r['kept']:,} dropped {r['dropped']}")
        if len(args.sizes) >= 2:
            lo, hi = min(args.sizes), max(args.sizes)
            a, b = results[lo], results[hi]
            grow_a = a["peak_rss_mb"] - a["rss_after_imports_mb"]
            grow_b = b["peak_rss_mb"] - b["rss_after_imports_mb"]
            print(f"records x{hi / lo:.0f}: peak RSS ratio {b['peak_rss_mb'] / a['peak_rss_mb']:.3f}, "
                  f"growth over imports ratio {grow_b / max(grow_a, 0.1):.3f} ({grow_a:.1f} -> {grow_b:.1f} MB), "
                  f"throughput ratio {(b['kept'] / b['seconds']) / (a['kept'] / a['seconds']):.3f}")


if __name__ == "__main__":
    main()
