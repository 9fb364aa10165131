"""Training-set memory: medmo's streamed Arrow build vs a list of rows + `Dataset.from_list`.

    .venv/bin/python bench/train_data.py                      # 20,000 and 200,000 records
    .venv/bin/python bench/train_data.py --sizes 50000 500000

The baseline is how a TRL script usually feeds a trainer (and how medmo did before
medmo.train.data): read every record, build a list of row dicts, `Dataset.from_list`.
medmo streams records into a memory-mapped Arrow file in the run folder. Both then read
every row once, as an epoch does. The records are report-like (a ~1 kB findings text)
SFT samples in 20,000-record JSONL shards, each pointing at one of 64 real PNGs.

What is compared is peak anonymous memory (RssAnon, sampled: what the process allocates
itself). Peak RSS is printed too, but it also counts the pages of the memory-mapped file
that the read pass touched: page cache, shared and dropped by the kernel under pressure.

Each (method, size) runs in its own child process, since peak RSS can only be measured
for a whole process; all children run back to back on the same machine. Printed: both
peaks above the imports, the build and read times, the baseline/medmo ratio at each
size, and how each method's peak grows with 10x the records (flat for medmo). Last, the
whole set is built by 1 and by `--num-proc` processes (one Arrow part per shard): records/s
and the speed-up.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memory import AnonPeak, peak_mb, reset_peak

FINDINGS = ("The cardiomediastinal silhouette is within normal limits. There is a small left pleural effusion "
            "with adjacent atelectasis. No pneumothorax. Degenerative changes of the thoracic spine. ") * 4


def make_records(folder: Path, n: int) -> Path:
    from PIL import Image

    from medmo.data.shards import ShardWriter

    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i in range(64):
        Image.new("L", (32, 32), i * 4).save(folder / "images" / f"{i}.png")
    out = folder / "records"
    with ShardWriter(out, "reports", "jsonl", 20_000) as w:
        for i in range(n):
            report = f"Study {i}. {FINDINGS}"
            w.write({"id": f"bench/train/{i}", "source": "bench", "split": "train", "task": "report",
                     "modality": "xray", "images": [f"../images/{i % 64}.png"],
                     "messages": [{"role": "user", "content": "<image>\nWrite the findings of this chest X-ray."},
                                  {"role": "assistant", "content": report}],
                     "answer": {"text": report}, "meta": {}})
    return out


def baseline(records: Path, n: int):
    """Every record into a list of row dicts, then `Dataset.from_list` (the usual TRL-script way)."""
    from datasets import Dataset

    from medmo.data.schema import read_records, resolve_image
    from medmo.data.shards import shard_files

    rows = []
    for f in shard_files(records):
        for rec in read_records(f)[:n - len(rows)]:
            rows.append({"id": rec.id, "messages": rec.messages,
                         "images": [str(resolve_image(i, f.parent)) for i in rec.images]})
    return Dataset.from_list(rows)


def medmo_build(records: Path, n: int | None, folder: Path, num_proc: int = 1):
    from medmo.train.sft import sft_dataset

    return sft_dataset([str(records)], folder, n, num_proc)[0]


def child(method: str, records: Path, n: int, folder: Path) -> dict:
    import datasets  # noqa: F401  (both methods import it; its import cost is not what is measured)
    import transformers  # noqa: F401

    import medmo.train.sft  # noqa: F401

    base = reset_peak()
    with AnonPeak() as anon:
        t0 = time.perf_counter()
        if method == "baseline":
            ds = baseline(records, n)
        elif method.startswith("build:"):  # every record, no max_samples: one part per shard, in N processes
            ds = medmo_build(records, None, folder, int(method.split(":")[1]))
        else:
            ds = medmo_build(records, n, folder)
        built = time.perf_counter() - t0
        chars = sum(len(row["messages"][1]["content"]) for row in ds)  # one pass over every row, as an epoch does
    return {"rows": len(ds), "chars": chars, "build_s": built, "read_s": time.perf_counter() - t0 - built,
            "peak_over_imports_mb": peak_mb() - base, "anon_over_imports_mb": anon.peak_mb - anon.start_mb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--num-proc", type=int, default=os.cpu_count(), help="processes for the parallel build")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(child(job["method"], Path(job["records"]), job["n"], Path(job["folder"]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        records = make_records(Path(tmp), max(args.sizes))
        results: dict[tuple[str, int], dict] = {}

        def run(method: str, n: int) -> dict:
            job = {"method": method, "records": str(records), "n": n, "folder": f"{tmp}/ds_{method}_{n}"}
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{method} with {n} records failed:\n{proc.stderr[-3000:]}")
            r = results[method, n] = json.loads(proc.stdout.strip().splitlines()[-1])
            assert r["rows"] == n, r
            return r

        for n in args.sizes:
            for method in ("medmo", "baseline"):
                r = run(method, n)
                print(f"{method:>8} {n:>9,} records: over imports, peak anonymous +{r['anon_over_imports_mb']:7.1f} MB, "
                      f"peak RSS +{r['peak_over_imports_mb']:7.1f} MB; build {r['build_s']:5.1f} s, "
                      f"one read pass {r['read_s']:4.1f} s")
            ratio = results["baseline", n]["anon_over_imports_mb"] / results["medmo", n]["anon_over_imports_mb"]
            assert results["baseline", n]["chars"] == results["medmo", n]["chars"], "both must read the same rows"
            print(f"{n:>18,} records: baseline / medmo peak anonymous memory = {ratio:.1f}x")
        small, large = min(args.sizes), max(args.sizes)
        if small != large:
            for method in ("medmo", "baseline"):
                growth = results[method, large]["anon_over_imports_mb"] / results[method, small]["anon_over_imports_mb"]
                print(f"{method:>8}: peak anonymous memory at {large:,} / at {small:,} records = {growth:.2f}x "
                      f"(records x{large / small:.0f})")
        one, many = run("build:1", large), run(f"build:{args.num_proc}", large)
        print(f"build of all {large:,} records ({-(-large // 20_000)} shards): 1 process {large / one['build_s']:,.0f} "
              f"records/s, {args.num_proc} processes {large / many['build_s']:,.0f} records/s: "
              f"{one['build_s'] / many['build_s']:.2f}x")


if __name__ == "__main__":
    main()
