"""`medmo data overlap` lookups vs brute force: speed ratio and identical answers, one process.

    .venv/bin/python bench/data_overlap.py
    .venv/bin/python bench/data_overlap.py --bench-images 1000000 --bench-texts 20000

Images: PHashIndex's pigeonhole buckets against a vectorized numpy scan of every
benchmark hash (the brute-force baseline), on random 64-bit hashes with planted
near-duplicates (1-6 flipped bits); both must return the same pairs. The crossover
measured here is PHashIndex's `scan_below` (it scans below that size).
Text: BenchIndex's MinHash-LSH lookup (verified by exact Jaccard) against exact Jaccard
with every benchmark question, on synthetic questions of 12-25 words with planted
near-duplicates (one word changed, case and punctuation changed); prints LSH recall
against the brute-force matches (should be 1.0 at the default threshold 0.8).
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from medmo.data.overlap import BenchIndex, ImageHasher, MinHasher, OverlapConfig, PHashIndex, jaccard, shingles
from medmo.data.shards import ShardWriter

WORDS = ("lesion nodule opacity effusion fracture mass liver lung kidney brain heart spleen left right upper lower "
         "lobe contrast enhancing hypodense hyperintense axial coronal sagittal ct mri xray ultrasound patient shows "
         "which what where is there most likely diagnosis finding abnormal normal size shape margin calcified cystic "
         "solid acute chronic history pain fever cough year old man woman child").split()


def bench_images(n: int, queries: int, distance: int, rng: np.random.Generator) -> None:
    hashes = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    index = PHashIndex(distance, scan_below=0)  # force the buckets to time them at every size
    t0 = time.perf_counter()
    for i, h in enumerate(hashes.tolist()):
        index.add(h, i)
    index.build()
    built = time.perf_counter() - t0
    pyrng = random.Random(0)
    qs = []
    for k in range(queries):
        h = int(hashes[pyrng.randrange(n)]) if k % 2 == 0 else pyrng.getrandbits(64)  # half planted, half random
        for bit in pyrng.sample(range(64), pyrng.randint(1, distance)):
            h ^= 1 << bit
        qs.append(h)
    t0 = time.perf_counter()
    fast = [sorted(index.query(q)) for q in qs]
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = [np.flatnonzero(np.bitwise_count(hashes ^ np.uint64(q)) <= distance).tolist() for q in qs]
    t_slow = time.perf_counter() - t0
    assert fast == slow, "bucketed lookup disagrees with the brute-force scan"
    print(f"images: {n:>9,} benchmark hashes, {queries:,} queries, distance {distance}: "
          f"buckets {t_fast / queries * 1e6:8.1f} us/query (built in {built:.2f} s), "
          f"numpy scan {t_slow / queries * 1e6:8.1f} us/query -> {t_slow / t_fast:.2f}x; "
          f"{sum(map(len, fast)):,} matches, identical")


def question(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 25))) + "?"


def bench_texts(n: int, queries: int, brute: int, threshold: float) -> None:
    rng = random.Random(0)
    texts = [question(rng) for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        with ShardWriter(tmp, "bench") as w:
            for i, t in enumerate(texts):
                w.write({"id": f"b/{i}", "source": "b", "split": "test", "task": "mcq", "images": [],
                         "messages": [{"role": "user", "content": t}], "meta": {"question": t}})
        cfg = OverlapConfig(train=tmp, bench=tmp, text_similarity=threshold)
        index = BenchIndex(cfg, ImageHasher(), MinHasher())
        t0 = time.perf_counter()
        index.add_all(tmp)
        built = time.perf_counter() - t0
    qs = []
    for k in range(queries):
        if k % 5 == 0:  # a planted near-duplicate: one word swapped, case and punctuation changed
            words = texts[rng.randrange(n)].split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            qs.append(" ".join(words).upper().replace("?", " ?!"))
        else:
            qs.append(question(rng))
    records = [{"task": "mcq", "images": [], "meta": {"question": q}, "messages": []} for q in qs]
    t0 = time.perf_counter()
    fast = [sorted(i for i, (kind, _) in index.query(r, Path(".")).items()) for r in records]
    t_fast = time.perf_counter() - t0
    from medmo.data.overlap import record_text

    t0 = time.perf_counter()
    slow = []
    for r in records[:brute]:
        sh = shingles(record_text(r), cfg.ngram)
        slow.append(sorted(i for i, other in index.shingles.items() if jaccard(sh, other) >= threshold))
    t_slow = time.perf_counter() - t0
    truth = sum(map(len, slow))
    found = sum(len(set(a) & set(b)) for a, b in zip(fast, slow))
    extra = sum(len(set(a) - set(b)) for a, b in zip(fast, slow))
    print(f"text:   {n:>9,} benchmark questions (index built in {built:.1f} s), {queries:,} queries: "
          f"MinHash-LSH {t_fast / queries * 1e6:8.1f} us/query, exact Jaccard with all "
          f"{t_slow / brute * 1e6:8.1f} us/query (first {brute}) -> {t_slow / brute / (t_fast / queries):.1f}x; "
          f"recall {found}/{truth} = {found / max(truth, 1):.3f}, false matches {extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench-images", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--image-queries", type=int, default=2000)
    ap.add_argument("--distance", type=int, default=6)
    ap.add_argument("--bench-texts", type=int, default=5000)
    ap.add_argument("--text-queries", type=int, default=2000)
    ap.add_argument("--brute-queries", type=int, default=200, help="queries the slow all-pairs baseline answers")
    ap.add_argument("--threshold", type=float, default=0.8)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for n in args.bench_images:
        bench_images(n, args.image_queries, args.distance, rng)
    bench_texts(args.bench_texts, args.text_queries, args.brute_queries, args.threshold)


if __name__ == "__main__":
    main()
