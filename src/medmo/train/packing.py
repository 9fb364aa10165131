"""Multimodal sequence packing for Qwen3-VL SFT (TRL's SFTTrainer refuses to pack vision data).

Several samples share one row up to a token budget, so a batch holds real tokens instead of
padding. What makes a packed row train exactly like the same samples in a padded batch:

- **Plan.** Sample lengths are computed exactly without decoding pixels (`sample_length`:
  the chat template's text plus the image-token count from each image's size), then
  best-fit-decreasing puts them in rows of at most `budget` tokens. A sample longer than the
  budget is reported in `PackPlan.too_long` and left out, never cut: cutting through image
  tokens breaks the image-feature/placeholder match.
- **Positions.** Qwen3-VL takes `position_ids` of shape [4, B, L]: row 0 is the plain text
  position, rows 1-3 are the (t, h, w) M-RoPE ids. Both restart at 0 for every sample; the
  M-RoPE ids are computed per sample exactly as `Qwen3VLModel.get_rope_index` does for an
  unpadded sample (a test checks they are identical).
- **Attention.** With `attention_mask=None` and no KV cache, transformers 5's
  `masking_utils` reads sample boundaries from the restarts in row 0 and builds a
  block-diagonal causal mask for SDPA/eager on any batch size; flash-attention-2 with ONE
  row per device turns the same restarts into `cu_seqlens` (varlen kernel; SFTConfig
  refuses more rows per device with flash attention). So no attention crosses a sample
  boundary and no mask is built here. Row padding (only with several rows per batch) is
  its own pseudo-sample with label -100.
- **Labels.** Only assistant tokens (the encoder's assistant mask); the first token of every
  sample is -100, so no sample is ever asked to predict the next sample's first token.
- `mm_token_type_ids`, `pixel_values` and `image_grid_thw` are concatenated in row order,
  the order in which the model scatters image features into placeholder tokens.

The plan is fixed for a run (rows are shuffled by the trainer's sampler, their contents
are not re-packed each epoch); lengths are cached in the run folder. Departure from TRL's
text packing (`pack_dataset(strategy="bfd")`): TRL splits or truncates over-long
sequences; medmo never does, since a split image is not a sample.
"""
from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from medmo.model.chat import encode_for_training
from medmo.model.tokens import token_count
from medmo.train.callbacks import COUNTS

logger = logging.getLogger(__name__)

IGNORE = -100


@dataclass
class PackPlan:
    """Which samples go in which row; over-long samples are counted, not packed."""

    packs: list[list[int]]
    lengths: list[int]
    budget: int
    too_long: list[int] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)

    @property
    def fill(self) -> float:
        """Real tokens / row slots: the non-padding fraction if every row is padded to the budget."""
        real = sum(self.lengths[i] for p in self.packs for i in p)
        return real / max(1, len(self.packs) * self.budget)

    def summary(self) -> dict[str, Any]:
        return {"samples": sum(len(p) for p in self.packs), "rows": len(self.packs), "budget": self.budget,
                "fill": round(self.fill, 4), "too_long": len(self.too_long), "unreadable": len(self.unreadable)}

    def skipped(self) -> Counter:
        """Samples left out of the plan, by the reasons the SFT collator uses for the same causes."""
        counts = {"longer than max_length": len(self.too_long), "unreadable image": len(self.unreadable)}
        return Counter({reason: n for reason, n in counts.items() if n})


def plan_packs(lengths: Sequence[int], budget: int) -> PackPlan:
    """Best-fit-decreasing bin packing of sample lengths into rows of at most `budget` tokens.

    Each sample, longest first, goes to the open row with the least room that still fits
    it (ties: the lowest row index), or opens a row. Rows are kept in buckets by remaining
    room, so a step costs O(log budget) whatever the number of rows (millions at MedMO's
    scale). Deterministic, so every rank and every resumed run builds the same plan.
    """
    if budget <= 0:
        raise ValueError(f"packing budget must be a positive number of tokens, got {budget}")
    lengths = [int(n) for n in lengths]
    too_long = [i for i, n in enumerate(lengths) if n > budget]
    order = sorted((i for i, n in enumerate(lengths) if n <= budget), key=lambda i: (-lengths[i], i))
    packs: list[list[int]] = []
    rooms: list[int] = []  # sorted distinct remaining capacities of open rows (at most budget + 1 values)
    rows_with: dict[int, list[int]] = {}  # remaining capacity -> heap of row indices
    for i in order:
        j = bisect.bisect_left(rooms, lengths[i])
        if j < len(rooms):
            room = rooms[j]
            p = heapq.heappop(rows_with[room])
            if not rows_with[room]:
                del rows_with[room], rooms[j]
        else:
            room, p = budget, len(packs)
            packs.append([])
        packs[p].append(i)
        left = room - lengths[i]
        if left not in rows_with:
            rows_with[left] = []
            bisect.insort(rooms, left)
        heapq.heappush(rows_with[left], p)
    if too_long:
        logger.warning("packing: %d of %d samples are longer than the %d-token budget and are skipped "
                       "(raise the budget or lower the image resolution)", len(too_long), len(lengths), budget)
    return PackPlan(packs=packs, lengths=lengths, budget=budget, too_long=too_long)


# ---------------------------------------------------------------------------------------------
# One sample: conversation + images -> token features, and its exact length without pixels.


def conversation(example: dict) -> list[dict]:
    """The processor chat format of an example whose `messages` hold text with `<image>` or parts."""
    from medmo.model.chat import to_conversation

    msgs = example["messages"]
    if msgs and isinstance(msgs[0].get("content"), str):
        return to_conversation(msgs)
    return msgs


def example_images(example: dict) -> list:
    from PIL import Image

    images = example.get("images") or []
    out = []
    for im in images:
        if isinstance(im, (str, Path)):
            from medmo.imaging import open_image

            im = open_image(im)
        out.append(im if isinstance(im, Image.Image) else Image.fromarray(im))
    return out


def _with_images(conv: list[dict], images: list) -> list[dict]:
    it = iter(images)
    return [{**m, "content": [{**c, "image": next(it)} if c.get("type") == "image" else c for c in m["content"]]}
            for m in conv]


def encode_example(processor, example: dict) -> dict[str, torch.Tensor]:
    """One sample, unpadded: input_ids, labels (assistant tokens only), mm_token_type_ids, images."""
    conv = _with_images(conversation(example), example_images(example))
    out = encode_for_training(processor, conv)
    ids = out["input_ids"][0]
    labels = ids.clone()
    labels[out["assistant_masks"][0] == 0] = IGNORE
    feat = {"input_ids": ids, "labels": labels, "mm_token_type_ids": out["mm_token_type_ids"][0]}
    if "pixel_values" in out:
        feat["pixel_values"] = out["pixel_values"]
        feat["image_grid_thw"] = out["image_grid_thw"]
    return feat


def sample_length(processor, example: dict, image_sizes: list[tuple[int, int]] | None = None,
                  chat_template: str | None = None) -> int:
    """Exact token length of `encode_example(processor, example)`, without decoding pixels.

    `image_sizes` ([(width, height)], placeholder order) avoids opening the images at all;
    `chat_template` must be the one the encoder uses (None: the processor's own).
    """
    if image_sizes is None:
        image_sizes = [im.size for im in example_images(example)]
    text = processor.apply_chat_template(conversation(example), chat_template=chat_template, tokenize=False)
    return token_count(processor, text, image_sizes)


# ---------------------------------------------------------------------------------------------
# Per-sample M-RoPE positions and row assembly.


def mrope_positions(mm_token_type_ids: torch.Tensor, image_grid_thw: torch.Tensor | None,
                    spatial_merge_size: int) -> torch.Tensor:
    """[3, L] (t, h, w) position ids of one unpadded sample, as `Qwen3VLModel.get_rope_index`.

    Text runs advance all three axes together; an image run gets its (t, h, w) grid offset
    by the current position, which then advances by max(h, w) of the merged grid.
    """
    grids = iter(image_grid_thw.tolist() if image_grid_thw is not None else [])
    parts, pos = [], 0
    for kind, group in itertools.groupby(mm_token_type_ids.tolist()):
        n = len(list(group))
        if kind == 0:
            parts.append(torch.arange(pos, pos + n).expand(3, -1))
            pos += n
            continue
        if kind != 1:
            raise ValueError("packing supports image and text tokens only (found video tokens)")
        t, h, w = next(grids)
        h, w = h // spatial_merge_size, w // spatial_merge_size
        if t * h * w != n:
            raise ValueError(f"image grid {t}x{h}x{w} does not match its {n} placeholder tokens")
        tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
        parts.append(torch.stack([tt, hh, ww]).reshape(3, -1) + pos)
        pos += max(h, w)
    return torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)


def pack_rows(rows: list[list[dict[str, torch.Tensor]]], pad_token_id: int, spatial_merge_size: int = 2,
              pad_to_multiple_of: int | None = None) -> dict[str, Any]:
    """Encoded samples grouped by row -> one model batch (no attention_mask, [4, B, L] positions)."""
    ids, labels, types, pos, pixels, grids = [], [], [], [], [], []
    for row in rows:
        r_ids, r_lab, r_typ, r_pos = [], [], [], []
        for f in row:
            lab = f["labels"].clone()
            lab[0] = IGNORE
            grid = f.get("image_grid_thw")
            p3 = mrope_positions(f["mm_token_type_ids"], grid, spatial_merge_size)
            r_pos.append(torch.cat([torch.arange(len(f["input_ids"]))[None], p3]))
            r_ids.append(f["input_ids"])
            r_lab.append(lab)
            r_typ.append(f["mm_token_type_ids"])
            if grid is not None:
                pixels.append(f["pixel_values"])
                grids.append(grid)
        ids.append(torch.cat(r_ids))
        labels.append(torch.cat(r_lab))
        types.append(torch.cat(r_typ))
        pos.append(torch.cat(r_pos, dim=1))
    width = max(len(x) for x in ids)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    batch = {
        "input_ids": torch.stack([_pad(x, width, pad_token_id) for x in ids]),
        "labels": torch.stack([_pad(x, width, IGNORE) for x in labels]),
        "mm_token_type_ids": torch.stack([_pad(x, width, 0) for x in types]),
        # padding restarts at 0: a pseudo-sample that attends only to itself
        "position_ids": torch.stack([torch.cat([p, torch.arange(width - p.shape[1]).expand(4, -1)], dim=1)
                                     for p in pos], dim=1),
        # transformers reads packed boundaries only without a KV cache; a packed batch never wants one
        "use_cache": False,
    }
    if pixels:
        batch["pixel_values"] = torch.cat(pixels)
        batch["image_grid_thw"] = torch.cat(grids)
    return batch


def _pad(x: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return torch.cat([x, x.new_full((width - len(x),), value)])


# ---------------------------------------------------------------------------------------------
# Trainer plumbing: a dataset whose items are rows, and the collator that builds their batch.


def plan_dataset(plan: PackPlan):
    """The plan as a `datasets.Dataset` (what TRL's trainers accept): one item {"pack": [indices]} per row."""
    from datasets import Dataset

    return Dataset.from_dict({"pack": plan.packs})


def image_size(src) -> tuple[int, int]:
    """(width, height) of an image path from its header when PIL can read it, else by decoding."""
    from PIL import Image

    if not isinstance(src, (str, Path)):
        return src.size
    try:
        with Image.open(src) as im:
            return im.size
    except OSError:
        from medmo.imaging import open_image  # DICOM, NIfTI, 16-bit TIFF

        return open_image(src).size


def _sample_ids(base) -> list:
    if "id" in getattr(base, "column_names", ()):
        return list(base["id"])  # one Arrow column read, not a decoded row per sample
    return [base[i].get("id", i) for i in range(len(base))]


def measure_lengths(base, processor, chat_template: str | None = None,
                    length_fn: Callable[[dict], int] | None = None, cache_file: str | Path | None = None,
                    num_proc: int = 1, purpose: str = "packing") -> list[int]:
    """Every example's exact token length (`sample_length`), -1 where it cannot be measured.

    With `cache_file`, lengths are stored there and reused while the samples (ids), the
    image budget and the chat template are unchanged: a resumed run, and every rank after
    the first (`main_process_first`), skip the measuring pass. With `num_proc` > 1 and a
    `datasets.Dataset` as `base`, the measuring pass runs in that many processes. Packing
    and length-grouped batches (medmo.train.grouping) share this pass and its cache.
    """
    from tqdm.auto import tqdm

    from medmo.data.shards import write_json

    length_fn = length_fn or (lambda ex: sample_length(processor, ex, [image_size(im) for im in ex.get("images") or []],
                                                       chat_template))

    def measure(ex) -> int:
        try:
            return length_fn(ex)
        except (OSError, ValueError) as e:
            logger.warning("%s: cannot measure sample %s: %s", purpose, ex.get("id", "?"), e)
            return -1

    key = json.dumps([_sample_ids(base), dict(processor.image_processor.size), chat_template or processor.chat_template],
                     default=str)
    key = hashlib.sha256(key.encode()).hexdigest()
    cached = json.loads(Path(cache_file).read_text()) if cache_file and Path(cache_file).exists() else {}
    if cached.get("key") == key:
        return cached["lengths"]
    if num_proc > 1 and hasattr(base, "map"):
        measured = base.map(lambda ex: {"length": measure(ex)}, num_proc=num_proc, remove_columns=base.column_names,
                            new_fingerprint=f"lengths-{key[:16]}", desc=f"{purpose}: measuring")
        lengths = list(measured["length"])
    else:
        lengths = [measure(base[i]) for i in tqdm(range(len(base)), desc=f"{purpose}: measuring", leave=False)]
    if cache_file:
        write_json(cache_file, {"key": key, "lengths": lengths}, indent=None)
    return lengths


def plan_for(base, processor, budget: int, chat_template: str | None = None,
             length_fn: Callable[[dict], int] | None = None, cache_file: str | Path | None = None,
             num_proc: int = 1) -> PackPlan:
    """Measure every example of `base` (`measure_lengths`) and plan its rows; unmeasurable
    examples are counted and left out."""
    raw = measure_lengths(base, processor, chat_template, length_fn, cache_file, num_proc)
    unreadable = [i for i, n in enumerate(raw) if n < 0]
    plan = plan_packs([budget + 1 if n < 0 else n for n in raw], budget)  # unreadable: planned as too long
    bad = set(unreadable)
    plan.too_long = [i for i in plan.too_long if i not in bad]
    plan.unreadable = unreadable
    logger.info("packing plan: %s", plan.summary())
    return plan


def unbatch_one(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A collator's batch of ONE sample -> that sample's unpadded features for `pack_rows`."""
    keep = batch["attention_mask"][0].bool() if "attention_mask" in batch else slice(None)
    feat = {k: batch[k][0][keep] for k in ("input_ids", "labels", "mm_token_type_ids")}
    if "pixel_values" in batch:
        feat["pixel_values"] = batch["pixel_values"]
        feat["image_grid_thw"] = batch["image_grid_thw"]
    return feat


class PackedCollator:
    """Collates rows into one packed batch for Qwen3-VL.

    A row is a list of examples, or {"pack": [indices]} into `base` (a `plan_dataset` item).

    `encode(example) -> features | None` defaults to `encode_example` with this processor;
    `pack_for_sft` passes the SFT collator's own encoding, so packed training sees exactly
    what padded training sees. An example the encoder rejects is dropped: None means the
    encoder counted why itself; an OSError/ValueError is counted here in `skipped`.
    `trace_file`, if set, gets one JSON line per batch with this rank and the example ids:
    the evidence that ranks see disjoint data and a resumed run continues in place. The
    batch carries its counts under `COUNTS` (real tokens, not row padding; this batch's skips)
    for the trainer, which removes them before the forward pass.
    """

    def __init__(self, processor, encode: Callable[[dict], dict | None] | None = None,
                 pad_to_multiple_of: int | None = None, trace_file: str | Path | None = None,
                 base: Sequence[dict] | None = None):
        self.processor = processor
        self.base = base
        self.encode = encode or (lambda ex: encode_example(processor, ex))
        self.pad_id = processor.tokenizer.pad_token_id
        self.merge = processor.image_processor.merge_size
        self.pad_to_multiple_of = pad_to_multiple_of
        self.trace_file = Path(trace_file) if trace_file else None
        self.skipped: Counter = Counter()

    def _encode(self, ex: dict) -> dict | None:
        try:
            feat = self.encode(ex)
        except (OSError, ValueError) as e:
            logger.warning("packing: skipping sample %s: %s", ex.get("id", "?"), e)
            feat = None
            self.skipped["unusable sample"] += 1
        return feat

    def __call__(self, rows: list[list[dict] | dict]) -> dict[str, Any]:
        before = Counter(self.skipped)
        rows = [[self.base[i] for i in r["pack"]] if isinstance(r, dict) else r for r in rows]
        if self.trace_file is not None:
            rank = int(os.environ.get("RANK", "0"))
            line = {"rank": rank, "ids": [ex.get("id") for row in rows for ex in row]}
            path = self.trace_file.with_name(f"{self.trace_file.stem}.rank{rank}{self.trace_file.suffix}")
            with open(path, "a") as f:
                f.write(json.dumps(line) + "\n")
        encoded = [[f for f in (self._encode(ex) for ex in row) if f is not None] for row in rows]
        encoded = [row for row in encoded if row]
        if not encoded:
            raise ValueError(f"every sample of a packed batch was unusable ({dict(self.skipped)}); check the records")
        batch = pack_rows(encoded, self.pad_id, self.merge, self.pad_to_multiple_of)
        batch[COUNTS] = {"tokens": sum(len(f["input_ids"]) for row in encoded for f in row),
                         "skipped": dict(self.skipped - before)}
        return batch


def pack_for_sft(rows, sft_collator, budget: int, trace_file: str | Path | None = None,
                 cache_file: str | Path | None = None, num_proc: int = 1):
    """(dataset, collator, plan) packed, replacing `medmo.train.sft`'s padded dataset and collator.

    Lengths are measured with the SFT collator's chat template and samples are encoded by
    the SFT collator itself (one at a time), so labels and images match padded training;
    its `skipped` counter keeps counting unusable samples by reason.
    """
    def encode(row: dict) -> dict | None:
        try:
            return unbatch_one(sft_collator([row]))
        except ValueError:  # the SFT collator has counted the reason
            return None

    plan = plan_for(rows, sft_collator.processor, budget, chat_template=sft_collator.chat_template,
                    cache_file=cache_file, num_proc=num_proc)
    collator = PackedCollator(sft_collator.processor, encode=encode, trace_file=trace_file, base=rows)
    collator.skipped = sft_collator.skipped
    return plan_dataset(plan), collator, plan
