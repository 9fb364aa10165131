"""Length-grouped batches for padded SFT (`group_by_length: true`): each batch holds samples of
similar token length, so it pays for its tokens and not for its longest sample's padding.

    sampler = LengthGroupedBatches(lengths, batch_size=16, seed=0)

A padded batch costs batch size x its longest sample. When lengths differ (the demo's
one-box answers beside three-box ones, short VQA beside long reports) much of that is
padding: in the demo's 1-3-cell stage, 23% of every batch (bench/RESULTS.md). Here each
epoch shuffles the samples, cuts the order into windows of `window` batches, sorts every
window by length and cuts it into batches; then all full batches of the epoch are shuffled,
and the one short batch (if any) comes last. Lengths are exact and measured once
(medmo.train.packing.measure_lengths, cached in the run folder); a sample that cannot be
measured (-1) groups with the shortest and is counted by the collator when it fails to load.

Departure from transformers' `LengthGroupedSampler` (`train_sampling_strategy:
group_by_length`): that one keeps each window sorted longest first, so training walks
from long to short samples every ~50 steps (a periodic curriculum, and with Adam's momentum
a periodic bias); here batch order is as random as without grouping. What a batch holds is
still grouped by length, which `packing: true` avoids altogether at the cost of larger
attention blocks.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class LengthGroupedBatches(Sampler[int]):
    """Sample indices whose consecutive runs of `batch_size` are batches of similar length.

    Deterministic for a (seed, epoch): a resumed run skips the same batches it trained
    on. The trainer calls `set_epoch` at every epoch.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, window: int = 64):
        if batch_size < 1 or window < 1:
            raise ValueError(f"batch_size and window must be >= 1, got {batch_size} and {window}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.window = window
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        """This epoch's batches, in training order."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        span = self.batch_size * self.window
        full, short = [], []
        for start in range(0, len(order), span):
            window = sorted(order[start:start + span], key=self.lengths.__getitem__)
            for i in range(0, len(window), self.batch_size):
                batch = window[i:i + self.batch_size]
                (full if len(batch) == self.batch_size else short).append(batch)
        return [full[k] for k in torch.randperm(len(full), generator=g).tolist()] + short

    def __iter__(self) -> Iterator[int]:
        return (i for batch in self.batches() for i in batch)
