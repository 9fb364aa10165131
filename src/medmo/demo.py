"""`medmo demo`: the whole MedMO recipe on CPU in minutes, with the tiny Qwen3-VL.

    medmo demo                      # about 10 minutes on two slow CPU cores, under 5 on fast ones; writes runs/demo/
    medmo demo --minutes 3 --out runs/demo_short

It builds the tiny model (medmo.model.tiny; here with a 2-layer language model, which
runs 1.5x the steps of the default 4 layers in the same minutes and localizes better for it),
generates synthetic microscopy data
(medmo.data.synthetic; one process per thread), runs the four stages of recipes/tiny/ through the same code as
the 8B recipes (TRL SFTTrainer for stages 1-3, GRPOTrainer for stage 4), and evaluates
held-out images after every stage with medmo.eval.runner. Outputs in the run folder:
results.json and results.md (per stage: one-cell IoU and IoU@0.5; on 1-3-cell images set
IoU, F1@0.5 and count MAE, with precision / recall in results.json; answer accuracy; time,
steps/s), iou_by_stage.png, predictions.png (1-3-cell images: true boxes green, predicted
red), each stage's run folder (model, log.jsonl, loss.png / reward.png) and each
evaluation's samples.jsonl.

The curriculum stands in for the paper's stages at toy scale and teaches "all of them" in
steps (count-aware): stage 1 learns to localize ONE cell per image with the vision tower
frozen (trained at stage 1's high learning rate, a randomly initialized tower collapses its
features and loses position information) and the merger at 3x the LLM's rate, stage 2 goes
on to 1-3 cells per image with every module training, in batches grouped by length (a
three-box answer no longer pads a batch of one-box ones), stage 3 mixes grounding of 1-3 cells with count /
presence questions (instruction tuning), stage 4 is GRPO on 1-3-cell grounding (thresholded
set-GIoU reward: extra and missing boxes earn nothing) mixed with count / presence questions
(accuracy reward). Targets list boxes left to right (medmo.data.synthetic). Held out: one
cell per image (IoU), 1-3 cells per image (set IoU and the detection metrics of
medmo.eval.grounding), VQA about 0-3 cells. Generation budgets fit three boxes (64 tokens
with the tiny tokenizer) in evaluation and in GRPO's rollouts.
Step counts come from the recipes, scaled by `minutes / 10`. Re-running resumes: a
finished stage is skipped and a finished evaluation is read back. Measured runs, their
times and what was tried: bench/RESULTS.md, "Multi-object grounding in the demo".
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medmo.config import make_run_dir, shipped_recipes
from medmo.data.synthetic import DEMO_CELLS, DEMO_EVAL_IMAGES, DEMO_EVAL_SEED, DEMO_IMAGE_SIZE

logger = logging.getLogger(__name__)

@dataclass
class DemoConfig:
    """The demo's knobs (`medmo demo --help`); the training hyper-parameters live in recipes/tiny/."""

    out: str = field(default="runs/demo", metadata={"help": "run folder (re-running resumes it)"})
    minutes: float = field(default=10.0, metadata={
        "help": "budget on the slower 2-core machines (a fast pair of cores needs about half); scales every "
                "stage's steps: more minutes, better multi-cell numbers (bench/RESULTS.md)"})
    threads: int | None = field(default=None, metadata={
        "help": "torch CPU threads, and processes drawing the data (default: min(2, cores))"})
    image_size: int = field(default=DEMO_IMAGE_SIZE, metadata={
        "help": "synthetic image side in pixels (64 px = 4 visual tokens: fast steps on CPU)"})
    max_cells: int = field(default=3, metadata={
        "help": "grounding images of stages 2-4 and the VQA items have 1..max_cells cells"})
    n_train: int = field(default=4000, metadata={"help": "training images per stage"})
    n_eval: int = field(default=DEMO_EVAL_IMAGES, metadata={
        "help": "held-out images of each grounding set, one-cell and 1..max_cells (and half as many VQA items)"})
    seed: int = field(default=0, metadata={"help": "seed of the synthetic images"})
    text_layers: int = field(default=2, metadata={
        "help": "language-model layers of the demo's tiny Qwen3-VL (2: more steps in the same minutes; "
                "the tiny model's default is 4)"})

    def __post_init__(self):
        if self.minutes <= 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        if self.text_layers < 1:
            raise ValueError(f"text_layers must be >= 1, got {self.text_layers}")


# Three boxes in MedMO syntax are 64 tokens with the tiny tokenizer (digits split one by one);
# a budget under that cuts the third box off and caps a 3-cell image's set IoU at 2/3.
EVAL_MAX_NEW_TOKENS = 80
# The untrained model never stops on its own: every answer would run the whole budget (half a
# minute of CPU at 80 tokens) to score 0 either way; 16 tokens shows the same 0.
UNTRAINED_MAX_NEW_TOKENS = 16


def make_data(cfg: DemoConfig, data_dir: Path, workers: int = 1) -> dict[str, Path]:
    """Write every stage's records and the held-out sets (missing ones only), on up to
    `workers` processes; returns {name: jsonl path}."""
    from medmo.data.synthetic import write_cell_set

    s, n = cfg.image_size, cfg.n_train
    # Stages 3 and 4 see about 2k and 300 samples at the default length: their sets are sized
    # near that (generating images is part of the demo's time).
    specs = {  # name: (grounding images, vqa items, max cells, seed)
        "stage1": (n, 0, 1, cfg.seed + 1),
        "stage2": (n, 0, cfg.max_cells, cfg.seed + 2),  # count-aware curriculum: 1 cell, then 1..max_cells
        "stage3": (n // 8, n // 4, cfg.max_cells, cfg.seed + 3),  # mostly VQA: grounding is learned by then
        "stage4": (n // 8, 0, cfg.max_cells, cfg.seed + 4),
        "stage4_vqa": (0, n // 16, cfg.max_cells, cfg.seed + 5),  # GRPO keeps answer accuracy too
        "eval_grounding": (cfg.n_eval, 0, 1, cfg.seed + DEMO_EVAL_SEED),
        # 1..max_cells cells, as many images as the one-cell set: at 64 the set IoU's standard error
        # (about 0.035) was the size of the differences between recipes
        "eval_grounding_multi": (cfg.n_eval, 0, cfg.max_cells, cfg.seed + 1002),
        "eval_vqa": (0, cfg.n_eval // 2, cfg.max_cells, cfg.seed + 1001),
    }
    paths = {name: data_dir / f"{name}.jsonl" for name in specs}
    todo = [dict(out_dir=data_dir, name=name, n_grounding=n_ground, n_vqa=n_vqa, seed=seed, image_size=s,
                 max_cells=max_cells, split="test" if name.startswith("eval") else "train", style=DEMO_CELLS)
            for name, (n_ground, n_vqa, max_cells, seed) in specs.items() if not paths[name].exists()]
    workers = min(workers, len(todo))
    if workers > 1:  # each set is drawn from its own seed: the same files on any worker
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for done in [pool.submit(write_cell_set, **kwargs) for kwargs in todo]:
                done.result()
    else:
        for kwargs in todo:
            write_cell_set(**kwargs)
    return paths


def evaluate_stage(model_dir: Path, data: dict[str, Path], out: Path, batch_size: int = 64,
                   max_new_tokens: int = EVAL_MAX_NEW_TOKENS) -> dict:
    """Grounding and VQA metrics of one checkpoint on the held-out sets (STAGE_METRICS's keys)."""
    from medmo.data.schema import read_records
    from medmo.eval.backends import HFBackend
    from medmo.eval.runner import evaluate_records

    backend = HFBackend(model_dir, batch_size=batch_size, max_new_tokens=max_new_tokens)
    results = {name: evaluate_records(backend, read_records(data[f"eval_{name}"]), out / name,
                                      base_dir=data[f"eval_{name}"].parent, name=name)
               for name in ("grounding", "grounding_multi", "vqa")}
    return {key: results[name].get(metric) for key, (name, metric) in STAGE_METRICS.items()}


# results.json key per stage: (held-out set, its metric). One cell: IoU; 1..max_cells: set IoU and detection.
STAGE_METRICS = {
    "mean_iou": ("grounding", "mean_iou"), "iou@0.5": ("grounding", "iou@0.5"),
    "parse_failures": ("grounding", "parse_failures"),
    "multi_iou": ("grounding_multi", "mean_iou"), "multi_f1@0.5": ("grounding_multi", "f1@0.5"),
    "multi_precision@0.5": ("grounding_multi", "precision@0.5"),
    "multi_recall@0.5": ("grounding_multi", "recall@0.5"), "multi_count_mae": ("grounding_multi", "count_mae"),
    "accuracy": ("vqa", "accuracy"),
}


def stage_plan(cfg: DemoConfig, data: dict[str, Path], out: Path, tiny: Path) -> list[tuple[str, object]]:
    """The tiny pipeline's stage configs, run on this demo's data, folders and scaled steps.

    Each stage trains on the record files its recipe lists (recipes/tiny/), taken from this
    demo's data folder by file name, with its steps scaled by minutes / 10. All of it goes in
    as pipeline overrides, so every config is validated as it will run."""
    from medmo.train import load_recipe
    from medmo.train.pipeline import stage_configs

    pipeline = shipped_recipes() / "tiny" / "pipeline.yaml"
    where = {"model": str(tiny), "output_dir": str(out)}
    pipe = load_recipe(pipeline, **where)
    stage_overrides = {}
    for path, (_, written) in zip(pipe.stages, stage_configs(pipe)):
        unknown = [p for p in written.data if Path(p).stem not in data]
        if unknown:
            raise ValueError(f"{path} trains on {unknown}, which the demo does not generate; it writes "
                             f"{', '.join(f'{name}.jsonl' for name in data)}")
        files = [str(data[Path(p).stem]) for p in written.data]
        steps = max(2, round(written.max_steps * cfg.minutes / 10))
        # save_steps = max_steps: one checkpoint at the end, resumable and cheap
        stage_overrides[Path(path).stem] = [f"data={json.dumps(files)}", f"max_steps={steps}", f"save_steps={steps}"]
    return stage_configs(load_recipe(pipeline, **where, stage_overrides=stage_overrides))


def run(cfg: DemoConfig) -> Path:
    """Build, train four stages, evaluate after each; returns the run folder."""
    import torch

    from medmo.model.tiny import TinyConfig, build_tiny
    from medmo.train import RUNNERS

    threads = cfg.threads or min(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    out = make_run_dir(cfg.out, cfg)
    t_start = time.perf_counter()
    tiny = out / "tiny"
    if not (tiny / "config.json").exists():
        build_tiny(tiny, TinyConfig(text_layers=cfg.text_layers))
    data = make_data(cfg, out / "data", workers=threads)
    data_seconds = round(time.perf_counter() - t_start, 1)  # building the tiny model included
    stages = stage_plan(cfg, data, out, tiny)
    t0 = time.perf_counter()
    rows = [{"stage": "untrained", "steps": 0, "train_seconds": 0.0,
             **evaluate_stage(tiny, data, out / "eval" / "untrained", max_new_tokens=UNTRAINED_MAX_NEW_TOKENS),
             "eval_seconds": round(time.perf_counter() - t0, 1)}]
    for kind, stage_cfg in stages:
        run_dir = Path(stage_cfg.output_dir)
        t0 = time.perf_counter()
        if not (run_dir / "config.json").exists():
            RUNNERS.get(kind).run(stage_cfg)
        seconds = time.perf_counter() - t0
        metrics = evaluate_stage(run_dir, data, out / "eval" / run_dir.name)
        rows.append({"stage": run_dir.name, "steps": stage_cfg.max_steps, "train_seconds": round(seconds, 1),
                     "steps_per_s": round(stage_cfg.max_steps / seconds, 2) if seconds > 1 else None, **metrics,
                     "eval_seconds": round(time.perf_counter() - t0 - seconds, 1)})
        logger.info("%s: %s", run_dir.name, rows[-1])
    results = {"stages": rows, "threads": threads, "data_seconds": data_seconds,
               "total_seconds": round(time.perf_counter() - t_start, 1), "config": asdict(cfg)}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(results_table(rows) + "\n")
    plot_iou(rows, out / "iou_by_stage.png")
    draw_predictions(out / "eval" / rows[-1]["stage"] / "grounding_multi" / "samples.jsonl",
                     data["eval_grounding_multi"].parent, out / "predictions.png")
    print(results_table(rows))
    print(f"\n{out}/: results.json, results.md, iou_by_stage.png, predictions.png "
          f"({results['total_seconds'] / 60:.1f} min on {threads} thread(s))")
    return out


_COLUMNS = {"stage": "{}", "mean_iou": "{:.3f}", "iou@0.5": "{:.3f}", "multi_iou": "{:.3f}", "multi_f1@0.5": "{:.3f}",
            "multi_count_mae": "{:.2f}", "accuracy": "{:.3f}", "steps": "{}", "train_seconds": "{:.1f}",
            "steps_per_s": "{:.2f}"}


def results_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join("-" if r.get(c) is None else f.format(r[c]) for c, f in _COLUMNS.items()) + " |"
              for r in rows]
    return "\n".join(lines)


def plot_iou(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["stage"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for key in ("mean_iou", "iou@0.5", "multi_iou", "multi_f1@0.5", "accuracy"):
        ax.plot(names, [r.get(key) or 0.0 for r in rows], marker="o", label=key)
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out synthetic set")
    ax.set_title("medmo demo: tiny Qwen3-VL, by stage")
    ax.grid(alpha=0.3)
    counts = ax.twinx()  # count error is in cells, not a fraction
    counts.plot(names, [r.get("multi_count_mae") or 0.0 for r in rows], "k--", marker="x", label="multi_count_mae")
    counts.set_ylabel("multi_count_mae (cells)")
    counts.set_ylim(0, max(2.0, *(r.get("multi_count_mae") or 0.0 for r in rows)))
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = counts.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def draw_predictions(samples_path: Path, base_dir: Path, png: Path, n: int = 8) -> None:
    """A strip of held-out images: true boxes green, predicted boxes red."""
    from PIL import Image

    from medmo.boxes import Box, parse_boxes
    from medmo.draw import draw_boxes
    from medmo.imaging import open_image

    rows = [json.loads(line) for line in samples_path.read_text().splitlines() if line.strip()][:n]
    tiles = []
    for r in rows:
        img = open_image(base_dir / r["images"][0])
        w, h = r["answer"]["image_size"]
        truth = [Box.from_list(b["bbox"], "true") for b in r["answer"]["boxes"]]
        pred = [Box.from_list(b.as_list(), "pred") for b in parse_boxes(r.get("response") or "", w, h)]
        tile = draw_boxes(img, truth, color="lime", labels=False)
        tiles.append(draw_boxes(tile, pred, color="red", labels=False).resize((w * 2, h * 2), Image.NEAREST))
    if not tiles:
        return
    tw, th = tiles[0].size
    strip = Image.new("RGB", (tw * len(tiles), th), "white")
    for i, t in enumerate(tiles):
        strip.paste(t, (i * tw, 0))
    strip.save(png)
