"""Recipe experiments on the demo's data: run stages of recipes/tiny/ with overrides and
evaluate after each, as `medmo demo` does, printing one JSON line per stage.

    .venv/bin/python bench/demo_stages.py runs/x1 s1:stage1_sft:stage1:600 s2:stage2_sft:stage2:300:learning_rate=1e-3
    .venv/bin/python bench/demo_stages.py runs/x2 --image-size 128 s1:stage1_sft:stage1:300:train_vision=true

Each STAGE is `name:recipe:data[+data]:steps[:key=json,key=json]`: a run folder name under
OUT, a recipe of recipes/tiny/ (its trainer is the recipe's), the demo record files it
trains on (stage1, stage2, stage3, stage4, stage4_vqa), its steps and any overrides (values
are JSON: 1e-3, true, "cosine"). Stages chain: each starts from the previous one's model (the first from --model, else
a fresh tiny model).
The data is `medmo demo`'s (medmo.demo.make_data), written once under --data (default
OUT/../data<size>); a finished stage or evaluation is not run again. Held-out metrics are
medmo.demo.STAGE_METRICS; `train_s` is wall seconds of training, `eval_s` of evaluation.
The experiments of issue 15 in bench/RESULTS.md were run with this script.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def run_stage(spec: str, prev: Path, out: Path, data: dict, size: int) -> Path:
    """Train one STAGE from `prev` (skipped when its run folder is finished); its run folder."""
    from medmo.config import shipped_recipes
    from medmo.train import RUNNERS, load_recipe, recipe_kind

    name, recipe, files, steps, *rest = spec.split(":")
    overrides = {k: json.loads(v) for k, v in (p.split("=", 1) for p in (rest[0].split(",") if rest else []) if p)}
    path = shipped_recipes() / "tiny" / f"{recipe}.yaml"
    run_dir = out / name
    cfg = load_recipe(path, model=str(prev), data=[str(data[f]) for f in files.split("+")], output_dir=str(run_dir),
                      max_steps=int(steps), save_steps=int(steps), min_pixels=size * size, max_pixels=size * size,
                      **overrides)
    if not (run_dir / "config.json").exists():
        RUNNERS.get(recipe_kind(path)).run(cfg)
    return run_dir


def main() -> None:
    import torch

    import medmo.demo as demo
    from medmo.model.tiny import build_tiny

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="experiment folder")
    ap.add_argument("stages", nargs="+", help="name:recipe:data[+data]:steps[:key=json,...]")
    ap.add_argument("--image-size", type=int, default=demo.DEMO_IMAGE_SIZE)
    ap.add_argument("--data", default=None, help="demo data folder (default: OUT/../data<size>)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None, help="start from this checkpoint (default: a fresh tiny model)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    t0 = time.perf_counter()
    data_dir = Path(args.data) if args.data else out.parent / f"data{args.image_size}"
    data = demo.make_data(demo.DemoConfig(out=str(out), image_size=args.image_size), data_dir, workers=args.threads)
    print(json.dumps({"stage": "data", "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    prev = Path(args.model) if args.model else out / "tiny"
    if not (prev / "config.json").exists():
        build_tiny(prev)
    for spec in args.stages:
        t1 = time.perf_counter()
        prev = run_stage(spec, prev, out, data, args.image_size)
        t2 = time.perf_counter()
        row = {"train_s": round(t2 - t1, 1), **demo.evaluate_stage(prev, data, out / "eval" / prev.name)}
        row["eval_s"] = round(time.perf_counter() - t2, 1)
        print(json.dumps({"stage": prev.name, **{k: round(v, 3) if isinstance(v, float) else v
                                                 for k, v in row.items()}}), flush=True)
    print(json.dumps({"stage": "total", "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
