"""Packing-plan cost per sample as the training set grows (`medmo.train.packing.plan_packs`).

    .venv/bin/python bench/pack_plan.py                          # 100k, 1M and 4M samples
    .venv/bin/python bench/pack_plan.py --sizes 18500000         # MedMO's stage 1

Lengths are drawn like a mixed SFT set (half short VQA of 60-300 tokens, half long
reports or high-resolution images of 800-3000) into rows of 8192 tokens. Printed per size:
seconds, microseconds per sample (flat when planning is linear), rows and fill.
"""
from __future__ import annotations

import argparse
import random
import time

from medmo.train.packing import plan_packs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 4_000_000])
    ap.add_argument("--budget", type=int, default=8192)
    args = ap.parse_args()
    rng = random.Random(0)
    for n in args.sizes:
        lengths = [rng.randint(60, 300) if rng.random() < 0.5 else rng.randint(800, 3000) for _ in range(n)]
        t0 = time.perf_counter()
        plan = plan_packs(lengths, args.budget)
        seconds = time.perf_counter() - t0
        print(f"{n:>11,} samples: {seconds:7.1f} s, {seconds / n * 1e6:5.2f} us/sample, "
              f"{len(plan.packs):,} rows of {args.budget}, fill {plan.fill:.4f}")


if __name__ == "__main__":
    main()
