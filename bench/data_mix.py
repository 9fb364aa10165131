"""`medmo data mix` at scale: records/s and peak memory, 10k vs 100k output records in one run.

    .venv/bin/python bench/data_mix.py                       # 10,000 and 100,000 records
    .venv/bin/python bench/data_mix.py --shuffle-buffer 1000

Three synthetic sources (record folders in 5,000-record JSONL shards, one of them
Parquet) sized 50% / 30% / 20% of the largest output; the mixture asks for equal
weights, so the smallest source is repeated and the largest subsampled. Each size runs
in its own child process (peak RSS is that mix alone). Memory is bounded by the shuffle
buffer (default 10,000 records), not by the record count: the 100k/10k peak ratio
should stay near 1 while the record count grows 10x.
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


def make_sources(folder: Path, largest: int) -> list[dict]:
    from medmo.data.shards import ShardWriter

    sources = []
    for name, share, fmt in (("alpha", 0.5, "jsonl"), ("beta", 0.3, "parquet"), ("gamma", 0.2, "jsonl")):
        out = folder / name
        n = int(largest * share)
        if not out.exists():
            with ShardWriter(out, name, fmt, 5000) as w:
                for i in range(n):
                    q = f"What does image {i} of {name} show in the left lower lobe?"
                    w.write({"id": f"{name}/train/{i}", "source": name, "split": "train", "task": "vqa",
                             "modality": "xray", "images": [f"images/{i % 300}.png"],
                             "messages": [{"role": "user", "content": "<image>\n" + q},
                                          {"role": "assistant", "content": f"finding {i % 50}"}],
                             "answer": {"text": f"finding {i % 50}", "closed": False}, "meta": {"question": q}})
        sources.append({"name": name, "path": str(out), "weight": 1.0})
    return sources


def child(sources: list[dict], out: Path, total: int, buffer: int) -> dict:
    import pyarrow.parquet  # noqa: F401  (imported before the baseline: one source is Parquet)

    from medmo.data.mixture import MixtureConfig, run

    base = reset_peak()
    t0 = time.perf_counter()
    run(MixtureConfig(out=str(out), sources=sources, total=total, shuffle_buffer=buffer, shard_size=20_000))
    seconds = time.perf_counter() - t0
    return {"total": total, "seconds": seconds, "peak_rss_mb": peak_mb(), "rss_after_imports_mb": base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--shuffle-buffer", type=int, default=10_000)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(child(job["sources"], Path(job["out"]), job["total"], job["buffer"])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        sources = make_sources(Path(tmp) / "sources", max(args.sizes))
        results = {}
        for n in args.sizes:
            job = {"sources": sources, "out": str(Path(tmp) / f"mix_{n}"), "total": n, "buffer": args.shuffle_buffer}
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"mix of {n} records failed:\n{proc.stderr[-3000:]}")
            r = results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{n:>8,} records (shuffle_buffer={args.shuffle_buffer:,}): {n / r['seconds']:>8,.0f} records/s "
                  f"({r['seconds']:.1f} s)  peak RSS {r['peak_rss_mb']:.1f} MB "
                  f"(+{r['peak_rss_mb'] - r['rss_after_imports_mb']:.1f} MB over imports)")
        if len(args.sizes) >= 2:
            lo, hi = min(args.sizes), max(args.sizes)
            print(f"records x{hi / lo:.0f}: peak RSS ratio {results[hi]['peak_rss_mb'] / results[lo]['peak_rss_mb']:.3f}")


if __name__ == "__main__":
    main()
