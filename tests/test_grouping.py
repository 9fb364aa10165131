"""Length-grouped batches (medmo.train.grouping) and `group_by_length: true` in an SFT stage."""
from __future__ import annotations

import json
import random

import pytest

from medmo.train.grouping import LengthGroupedBatches


def _spread(batch: list[int], lengths: list[int]) -> int:
    return max(lengths[i] for i in batch) - min(lengths[i] for i in batch)


@pytest.mark.parametrize("n, batch_size, window", [(1000, 16, 8), (997, 16, 8), (10, 4, 64), (3, 8, 2), (64, 1, 4)])
def test_every_sample_once_per_epoch_in_full_batches_then_one_short(n, batch_size, window):
    lengths = [random.Random(i).choice([49, 69, 89]) for i in range(n)]
    sampler = LengthGroupedBatches(lengths, batch_size, seed=3, window=window)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert list(sampler) == [i for b in batches for i in b] and len(sampler) == n
    sizes = [len(b) for b in batches]
    short = [s for s in sizes if s < batch_size]
    assert len(short) <= -(-n // (batch_size * window))  # at most one short batch per window
    assert sizes[:len(sizes) - len(short)] == [batch_size] * (len(sizes) - len(short))  # short ones come last


def test_batches_hold_similar_lengths_where_random_batches_do_not():
    rng = random.Random(0)
    lengths = [rng.choice([49, 69, 89]) for _ in range(4000)]  # one, two or three boxes
    grouped = LengthGroupedBatches(lengths, 16, seed=0).batches()
    order = list(range(4000))
    rng.shuffle(order)
    shuffled = [order[i:i + 16] for i in range(0, 4000, 16)]
    assert sum(_spread(b, lengths) == 0 for b in grouped) >= 0.95 * len(grouped)
    assert sum(_spread(b, lengths) == 0 for b in shuffled) < 0.01 * len(shuffled)  # never uniform by chance
    padded = sum(16 * max(lengths[i] for i in b) for b in grouped)
    assert padded < 1.02 * sum(lengths)


def test_batch_order_is_shuffled_not_sorted():
    lengths = list(range(2048))  # every length distinct: a sorted walk would be monotone
    batches = LengthGroupedBatches(lengths, 16, seed=0, window=128).batches()
    firsts = [lengths[b[0]] for b in batches]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)
    rises = sum(b > a for a, b in zip(firsts, firsts[1:]))
    assert 0.3 < rises / (len(firsts) - 1) < 0.7  # about half the steps go up: no long-to-short walk


def test_deterministic_per_seed_and_epoch():
    lengths = [i % 7 for i in range(500)]
    a, b = LengthGroupedBatches(lengths, 8, seed=1), LengthGroupedBatches(lengths, 8, seed=1)
    assert a.batches() == b.batches()  # a resumed run skips exactly the batches it trained on
    b.set_epoch(1)
    assert a.batches() != b.batches()
    assert LengthGroupedBatches(lengths, 8, seed=2).batches() != a.batches()


def test_unmeasurable_samples_still_train():
    lengths = [-1, 50, 50, -1, 90, 90, 50, 90]  # -1: measure_lengths could not read it
    batches = LengthGroupedBatches(lengths, 2, seed=0, window=4).batches()
    assert sorted(i for b in batches for i in b) == list(range(8))


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(window=0)])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="must be >= 1"):
        LengthGroupedBatches([1, 2, 3], **{"batch_size": 2, **bad})


def test_group_by_length_stage_batches_by_exact_length(tiny_dir, tmp_path):
    """A real SFT trainer on one-box and three-box answers plus one-word VQA: every batch it
    loads holds one length (no padding), the lengths are the collator's exact token counts and
    are cached in the run folder, and a run trains and resumes with them."""
    from medmo.data.synthetic import write_cell_set
    from medmo.train.sft import LENGTHS, SFTConfig, build_trainer, prepare, run

    one = write_cell_set(tmp_path / "data", "one", 8, image_size=64, max_cells=1, seed=1)
    three = write_cell_set(tmp_path / "data", "three", 8, n_vqa=8, image_size=64, min_cells=3, max_cells=3, seed=2)
    out = tmp_path / "run"
    cfg = SFTConfig(model=str(tiny_dir), data=[str(one), str(three)], output_dir=str(out), group_by_length=True,
                    per_device_train_batch_size=4, max_steps=2, save_steps=2, logging_steps=1, learning_rate=1e-3,
                    min_pixels=4096, max_pixels=4096)
    summary = prepare(cfg)  # `medmo train --prepare`: the lengths, measured before any model loads
    measured = json.loads((out / LENGTHS).read_text())["lengths"]
    assert summary["lengths"] == {"min": min(measured), "max": max(measured), "unreadable": 0}
    trainer, collator = build_trainer(cfg, out)
    assert json.loads((out / LENGTHS).read_text())["lengths"] == measured
    assert len(measured) == 24 and len(set(measured)) >= 3  # one box, three boxes, short answers
    spreads = sorted(measured[i + 4] - measured[i] for i in range(0, 20, 4))  # chunks of 4 in file order mix lengths
    seen = 0
    for batch in trainer.get_train_dataloader():
        real = batch["attention_mask"].sum(1)
        assert int(real.max()) in measured and batch["attention_mask"].shape[1] == int(real.max())
        assert int(real.max() - real.min()) <= 3  # a 2-digit coordinate beside 3-digit ones; never 1 box beside 3
        seen += len(real)
    assert seen == 24 and max(spreads) > 3
    assert run(cfg) == out and (out / "checkpoint-2").is_dir()
    with pytest.raises(ValueError, match="choose one"):
        SFTConfig(model="m", data=[str(one)], group_by_length=True, packing=True, max_length=512)
