"""medmo's packed SFT vs TRL's default padded SFTTrainer: padding and real tokens per second.

    .venv/bin/python bench/sft_packing.py                       # 128 samples, one epoch each
    .venv/bin/python bench/sft_packing.py --samples 256 --batch 8 --budget 2048

The same samples, one process, the tiny Qwen3-VL, fp32 on CPU, one epoch each, both
through TRL's SFTTrainer:

- baseline: TRL's defaults for a vision dataset (its DataCollatorForVisionLanguageModeling,
  batches of `--batch` samples padded to the longest);
- medmo: `medmo.train.sft` with `packing: true` (rows of up to `--budget` tokens packed
  best-fit-decreasing, one row per step, per-sample M-RoPE positions, no cross-sample
  attention).

The mixture is what makes padding expensive in practice: 3/4 short VQA (count / presence
questions, one-word answers) on small images and 1/4 long reports on larger images, every
image a different size (64-448 px). Prints the non-padding token fraction of each
(real tokens / tokens the model ran on; target >= 0.95 for medmo) and the throughput in
real tokens per second (target ratio >= 1.5x). Real tokens are the same for both runs.
"""
from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

REPORT_SENTENCES = [
    "The lungs are clear.", "No acute cardiopulmonary abnormality.", "heart size is normal.",
    "There is a small left lower lobe opacity.", "No pleural effusion or pneumothorax.",
    "Mild cardiomegaly.", "The right upper lobe nodule is unchanged.", "No fracture.",
    "Consolidation in the left lower lobe, consistent with pneumonia.", "Mild edema.",
]


class Counting:
    """Wraps a collator; counts real (non-padding) tokens and the tokens the model runs on."""

    def __init__(self, collator, pad_id: int):
        self.collator, self.pad_id = collator, pad_id
        self.real = self.total = 0
        self.seconds = 0.0  # time spent collating (image decoding + processor), inside the timed epoch

    def __call__(self, examples):
        t0 = time.perf_counter()
        batch = self.collator(examples)
        self.seconds += time.perf_counter() - t0
        ids = batch["input_ids"]
        if "attention_mask" in batch:
            self.real += int(batch["attention_mask"].sum())
        else:  # packed rows: padding is only the tail of a row, filled with pad tokens after the last sample
            self.real += int(sum(_row_real(row, self.pad_id) for row in ids))
        self.total += ids.numel()
        return batch


def _row_real(row: torch.Tensor, pad_id: int) -> int:
    nonpad = (row != pad_id).nonzero()
    return int(nonpad[-1]) + 1 if len(nonpad) else 0


def make_records(n: int, out: Path, seed: int) -> Path:
    from PIL import Image, ImageDraw

    from medmo.data.schema import Record, write_jsonl

    rng = random.Random(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        long = i % 4 == 3
        w, h = (rng.randrange(192, 449), rng.randrange(192, 449)) if long else \
            (rng.randrange(64, 225), rng.randrange(64, 225))
        img = Image.new("RGB", (w, h), (rng.randrange(256), 90, 120))
        ImageDraw.Draw(img).ellipse([w // 4, h // 4, w // 2, h // 2], fill=(230, 230, 230))
        name = f"images/{i}.png"
        img.save(out / name)
        if long:
            text = "Findings: " + " ".join(rng.choice(REPORT_SENTENCES) for _ in range(rng.randrange(8, 20)))
            msgs = [{"role": "user", "content": "<image>Findings:"}, {"role": "assistant", "content": text}]
            task = "report"
        else:
            q, a = rng.choice([("How many cells are in the image? Answer with a single word or number.",
                                str(rng.randrange(1, 6))), ("Is there a cell in the image? Please answer yes or no.",
                                                            rng.choice(["yes", "no"]))])
            msgs = [{"role": "user", "content": "<image>" + q}, {"role": "assistant", "content": a}]
            task = "vqa"
        records.append(Record(id=f"bench/{i}", source="bench", split="train", task=task, messages=msgs,
                              images=[name], modality="microscopy"))
    path = out / "mix.jsonl"
    write_jsonl(records, path)
    return path


def run_medmo(tiny: Path, data: Path, out: Path, budget: int) -> tuple[Counting, float, int]:
    from medmo.config import load_config
    from medmo.train.sft import SFTConfig, build_trainer

    cfg = load_config(SFTConfig, None, [], model=str(tiny), data=[str(data)], output_dir=str(out), packing=True,
                      max_length=budget, per_device_train_batch_size=1, num_train_epochs=1, learning_rate=1e-4,
                      train_vision=True, save_steps=10**6, logging_steps=10**6, resume=False)
    trainer, collator = build_trainer(cfg, out)
    return _timed(trainer, collator.processor.tokenizer.pad_token_id)


def run_trl(tiny: Path, data: Path, out: Path, batch: int) -> tuple[Counting, float, int]:
    from datasets import Dataset
    from PIL import Image
    from trl import SFTConfig, SFTTrainer

    from medmo.data.schema import read_records
    from medmo.model.chat import to_conversation
    from medmo.model.load import load_model, load_processor

    rows = [{"messages": to_conversation(r.messages), "images": [Image.open(data.parent / p) for p in r.images]}
            for r in read_records(data)]
    args = SFTConfig(output_dir=str(out), per_device_train_batch_size=batch, num_train_epochs=1, learning_rate=1e-4,
                     max_length=None, save_strategy="no", logging_steps=10**6, report_to="none",
                     use_cpu=True, disable_tqdm=True)
    processor = load_processor(tiny)
    trainer = SFTTrainer(model=load_model(tiny), args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=processor)
    return _timed(trainer, processor.tokenizer.pad_token_id)


def _timed(trainer, pad_id: int) -> tuple[Counting, float, int]:
    counting = Counting(trainer.data_collator, pad_id)
    trainer.data_collator = counting
    t0 = time.perf_counter()
    out = trainer.train()
    return counting, time.perf_counter() - t0, out.global_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=128, help="samples in the mixture (one epoch each)")
    parser.add_argument("--batch", type=int, default=8, help="TRL baseline: samples per padded batch")
    parser.add_argument("--budget", type=int, default=2048, help="medmo: tokens per packed row")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    from medmo.model.tiny import build_tiny

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny = build_tiny(tmp / "tiny")
        data = make_records(args.samples, tmp / "data", args.seed)
        torch.manual_seed(args.seed)
        base, base_s, base_steps = run_trl(tiny, data, tmp / "trl", args.batch)
        torch.manual_seed(args.seed)
        packed, packed_s, packed_steps = run_medmo(tiny, data, tmp / "medmo", args.budget)

    print(f"{args.samples} samples (3/4 short VQA, 1/4 long reports, images 64-448 px), tiny Qwen3-VL, "
          f"fp32, {args.threads} CPU threads, one epoch each")
    print(f"{'':30s} {'steps':>6s} {'real tokens':>12s} {'model tokens':>13s} {'non-pad':>8s} "
          f"{'seconds':>8s} {'collate s':>9s} {'real tok/s':>11s}")
    for name, c, s, steps in ((f"TRL SFTTrainer (padded, batch {args.batch})", base, base_s, base_steps),
                              (f"medmo packed (budget {args.budget})", packed, packed_s, packed_steps)):
        print(f"{name:30s} {steps:6d} {c.real:12d} {c.total:13d} {c.real / c.total:8.3f} {s:8.1f} {c.seconds:9.1f} "
              f"{c.real / s:11.1f}")
    if packed.real != base.real:
        print(f"warning: real token counts differ ({packed.real} vs {base.real}): a sample was skipped or the "
              "templates differ", file=sys.stderr)
    ratio = (packed.real / packed_s) / (base.real / base_s)
    print(f"non-padding fraction: medmo {packed.real / packed.total:.3f} (target >= 0.95), "
          f"TRL {base.real / base.total:.3f}")
    print(f"throughput ratio (real tokens/s, medmo / TRL): {ratio:.2f}x (target >= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
