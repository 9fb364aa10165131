"""Multimodal packing: the plan, exact lengths, per-sample M-RoPE, and the key proof that a
packed batch trains exactly like the same samples padded (loss equal to 1e-5, attention
never crossing samples, image tokens never cut)."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from medmo.train.packing import (
    PackedCollator, encode_example, mrope_positions, pack_rows, plan_dataset, plan_for, plan_packs,
    sample_length,
)

# (lengths, budget, expected rows, expected too_long) — a comment per case
PLAN_CASES = [
    ([5, 5, 5], 10, [[0, 1], [2]], []),             # two fit together, the third opens a row
    ([7, 3, 6, 4], 10, [[0, 1], [2, 3]], []),       # decreasing order pairs 7+3 and 6+4 perfectly
    ([4, 12, 6], 10, [[2, 0]], [1]),                # 12 > budget: reported, not cut; 6+4 share a row
    ([10], 10, [[0]], []),                          # exactly the budget fits
    ([2, 9, 8], 10, [[1], [2, 0]], []),             # best fit: 2 goes where it leaves least room (8)
    ([], 10, [], []),                               # nothing to pack
]


@pytest.mark.parametrize("lengths,budget,rows,too_long", PLAN_CASES)
def test_plan_packs_table(lengths, budget, rows, too_long):
    plan = plan_packs(lengths, budget)
    assert plan.packs == rows
    assert plan.too_long == too_long


def test_plan_packs_invariants():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 300, (500,), generator=g).tolist()
    plan = plan_packs(lengths, 256)
    placed = sorted(i for p in plan.packs for i in p)
    assert placed == sorted(set(range(500)) - set(plan.too_long))  # every fitting sample exactly once
    assert all(sum(lengths[i] for i in p) <= 256 for p in plan.packs)
    assert set(plan.too_long) == {i for i, n in enumerate(lengths) if n > 256}
    assert plan.fill > 0.95  # many small items: rows come out nearly full
    with pytest.raises(ValueError, match="budget"):
        plan_packs([1], 0)


def test_plan_packs_is_best_fit_decreasing():
    """The bucketed planner against the definition, written the slow obvious way."""
    def best_fit(lengths, budget):
        rows, room = [], []
        for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
            if lengths[i] > budget:
                continue
            fits = [r for r in range(len(rows)) if room[r] >= lengths[i]]
            r = min(fits, key=lambda r: (room[r], r)) if fits else len(rows)
            if r == len(rows):
                rows.append([])
                room.append(budget)
            rows[r].append(i)
            room[r] -= lengths[i]
        return rows

    g = torch.Generator().manual_seed(1)
    for _ in range(50):
        budget = int(torch.randint(1, 400, (1,), generator=g))
        lengths = torch.randint(1, 500, (int(torch.randint(0, 120, (1,), generator=g)),), generator=g).tolist()
        assert plan_packs(lengths, budget).packs == best_fit(lengths, budget)


def _image(seed: int, w: int, h: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray(torch.randint(0, 255, (h, w, 3), generator=g, dtype=torch.uint8).numpy())


def _examples() -> list[dict]:
    """Short VQA, a grounding answer, a text-only question, a long report, a two-image sample."""
    return [
        {"id": "vqa", "images": [_image(0, 100, 70)],
         "messages": [{"role": "user", "content": "<image>How many cells are in the image?"},
                      {"role": "assistant", "content": "3"}]},
        {"id": "ground", "images": [_image(1, 200, 96)],
         "messages": [{"role": "user", "content": "<image>Detect and localize all cells in the image."},
                      {"role": "assistant", "content": "cell <box>[[156, 516, 231, 607]]</box>"}]},
        {"id": "text", "images": [],
         "messages": [{"role": "user", "content": "What is the modality?"}, {"role": "assistant", "content": "CT"}]},
        {"id": "report", "images": [_image(2, 64, 320)],
         "messages": [{"role": "user", "content": "<image>Findings:"},
                      {"role": "assistant", "content": "The lungs are clear. No acute cardiopulmonary abnormality. "
                                                       "heart size is normal. Impression: normal."}]},
        {"id": "two", "images": [_image(3, 64, 64), _image(4, 130, 40)],
         "messages": [{"role": "user", "content": "<image><image>Is there a lesion? Please answer yes or no."},
                      {"role": "assistant", "content": "yes"}]},
    ]


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from medmo.model.load import load_model, load_processor

    model = load_model(tiny_dir, dtype="float32", attn_implementation="sdpa").eval()
    return model, load_processor(tiny_dir)


def test_sample_length_is_exact_without_pixels(tiny):
    _, processor = tiny
    for ex in _examples():
        feat = encode_example(processor, ex)
        assert sample_length(processor, ex) == len(feat["input_ids"]), ex["id"]
        sizes = [im.size for im in ex["images"]]
        assert sample_length(processor, {**ex, "images": []}, image_sizes=sizes) == len(feat["input_ids"])


def test_mrope_positions_match_get_rope_index(tiny):
    model, processor = tiny
    for ex in _examples():
        f = encode_example(processor, ex)
        ref, _ = model.model.get_rope_index(f["input_ids"][None], f["mm_token_type_ids"][None], f.get("image_grid_thw"))
        assert torch.equal(mrope_positions(f["mm_token_type_ids"], f.get("image_grid_thw"), 2), ref[:, 0]), ex["id"]


def _padded_batch(processor, examples):
    """The unpacked reference: the processor's own padded batch, assistant-only labels."""
    from medmo.train.packing import _with_images, conversation

    convs = [_with_images(conversation(ex), ex["images"]) for ex in examples]
    out = processor.apply_chat_template(convs, tokenize=True, return_dict=True, return_tensors="pt",
                                        return_assistant_tokens_mask=True, processor_kwargs={"padding": True})
    labels = out["input_ids"].clone()
    labels[out.pop("assistant_masks") == 0] = -100
    labels[out["attention_mask"] == 0] = -100
    return {**out, "labels": labels}


def test_packed_loss_equals_unpacked_loss(tiny):
    model, processor = tiny
    examples = _examples()
    padded = _padded_batch(processor, examples)
    assert (padded["attention_mask"] == 0).any()  # the reference really is padded
    feats = [encode_example(processor, ex) for ex in examples]
    with torch.no_grad():
        ref = model(**padded).loss
    for rows in ([feats], [feats[:2], feats[2:]], [[feats[3], feats[0]], [feats[4]], [feats[1], feats[2]]]):
        packed = pack_rows(rows, processor.tokenizer.pad_token_id, 2)
        assert "attention_mask" not in packed and packed["position_ids"].shape[0] == 4
        with torch.no_grad():
            got = model(**packed).loss
        assert got.item() == pytest.approx(ref.item(), abs=1e-5)
    # the same for gradients: one packed row gives the padded batch's gradient
    model.zero_grad()
    model(**padded).loss.backward()
    ref_grad = model.lm_head.weight.grad.clone()
    model.zero_grad()
    model(**pack_rows([feats], processor.tokenizer.pad_token_id, 2)).loss.backward()
    assert torch.allclose(model.lm_head.weight.grad, ref_grad, atol=1e-6)
    model.zero_grad()


def test_attention_never_crosses_samples(tiny):
    model, processor = tiny
    a, b = _examples()[1], _examples()[0]
    a_other = {**a, "images": [_image(9, 200, 96)],
               "messages": [{"role": "user", "content": "<image>Locate the lesion."},
                            {"role": "assistant", "content": "nodule <box>[[1, 2, 3, 4]]</box>"}]}
    fb = encode_example(processor, b)
    n_b = len(fb["input_ids"])
    pad = processor.tokenizer.pad_token_id
    with torch.no_grad():
        before = model(**pack_rows([[encode_example(processor, a), fb]], pad, 2)).logits[0, -n_b:]
        after = model(**pack_rows([[encode_example(processor, a_other), fb]], pad, 2)).logits[0, -n_b:]
        alone = model(**pack_rows([[fb]], pad, 2)).logits[0]
        # control: the same row read as ONE sequence (positions not restarted) does see sample A
        leaky = pack_rows([[encode_example(processor, a_other), fb]], pad, 2)
        leaky["position_ids"][0] = torch.arange(leaky["input_ids"].shape[1])
        leaked = model(**leaky).logits[0, -n_b:]
    assert torch.allclose(before, after, atol=1e-5)
    assert torch.allclose(before, alone, atol=1e-5)
    assert not torch.allclose(leaked, after, atol=1e-3)


def test_over_long_samples_are_reported_never_cut(tiny, tmp_path):
    model, processor = tiny
    examples = _examples()
    lengths = [sample_length(processor, ex) for ex in examples]
    budget = sorted(lengths)[-2]  # the longest sample does not fit
    plan = plan_for(examples, processor, budget)
    longest = max(range(len(examples)), key=lengths.__getitem__)
    assert plan.too_long == [longest]
    ds = plan_dataset(plan)
    collator = PackedCollator(processor, trace_file=tmp_path / "ids.jsonl", base=examples)
    batch = collator([ds[i] for i in range(len(ds))])
    image_token = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    grid = batch["image_grid_thw"]
    assert (batch["input_ids"] == image_token).sum() == int((grid.prod(-1) // 4).sum())  # every image whole
    assert batch["input_ids"].shape[1] <= budget
    with torch.no_grad():
        model(**batch)  # placeholders and image features still match
    trace = [json.loads(line) for line in (tmp_path / "ids.rank0.jsonl").read_text().splitlines()]
    assert sorted(trace[0]["ids"]) == sorted(ex["id"] for i, ex in enumerate(examples) if i != longest)


# SFTConfig guards for packing — a comment per case
PACKING_CONFIG_ERRORS = [
    ({"packing": True}, "max_length"),  # a packed row needs a token budget
    ({"packing": True, "max_length": 512, "attn_implementation": "flash_attention_2",
      "per_device_train_batch_size": 2}, "per_device_train_batch_size: 1"),  # varlen reads one row per device
    ({"trace_ids": True}, "packing: true"),  # the id trace is written by the packed collator
]


@pytest.mark.parametrize("overrides,message", PACKING_CONFIG_ERRORS)
def test_packing_config_errors(overrides, message):
    from medmo.config import load_config
    from medmo.train.sft import SFTConfig

    with pytest.raises(ValueError, match=message):
        load_config(SFTConfig, None, [], model="m", data=["d.jsonl"], **overrides)


def test_sft_packed_batches_give_the_sft_padded_loss(tiny, tmp_path):
    """Through medmo.train.sft itself: SFTCollator's padded batch vs pack_for_sft's packed rows."""
    from medmo.data.synthetic import write_cell_set
    from medmo.train.packing import pack_for_sft
    from medmo.train.sft import SFTCollator, sft_dataset

    model, processor = tiny
    base, _ = sft_dataset([str(write_cell_set(tmp_path, "cells", 6, n_vqa=4, image_size=96))], tmp_path / "dataset")
    rows = list(base)
    collator = SFTCollator(processor)
    dataset, packed_collator, _ = pack_for_sft(base, collator, budget=200, trace_file=None)
    assert len(dataset) > 1 and max(len(p) for p in dataset["pack"]) > 1  # several rows of several samples
    packed = packed_collator([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        want = model(**collator(rows)).loss
        got = model(**packed).loss
    assert got.item() == pytest.approx(want.item(), abs=1e-5)
    assert (packed["labels"] != -100).sum() == (collator(rows)["labels"] != -100).sum()


def test_plan_lengths_are_cached_per_samples_and_budget(tiny, tmp_path):
    _, processor = tiny
    examples = _examples()
    cache = tmp_path / "run" / "packing_lengths.json"  # the run folder may not exist yet
    first = plan_for(examples, processor, 400, cache_file=cache)

    def must_not_measure(ex):
        raise AssertionError("lengths should come from the cache")

    again = plan_for(examples, processor, 400, length_fn=must_not_measure, cache_file=cache)
    assert again.packs == first.packs and again.lengths == first.lengths
    changed = [*examples[:-1], {**examples[-1], "id": "other"}]  # different samples: measured again
    with pytest.raises(AssertionError, match="cache"):
        plan_for(changed, processor, 400, length_fn=must_not_measure, cache_file=cache)


def test_unreadable_images_are_counted_not_fatal(tiny, tmp_path):
    _, processor = tiny
    (tmp_path / "bad.png").write_bytes(b"not an image")
    good = _examples()[0]
    bad = {**good, "id": "bad", "images": [str(tmp_path / "bad.png")]}
    missing = {**good, "id": "missing", "images": [str(tmp_path / "absent.png")]}
    plan = plan_for([good, bad, missing], processor, 400)
    assert plan.unreadable == [1, 2] and plan.too_long == [] and plan.packs == [[0]]
    collator = PackedCollator(processor)
    batch = collator([[good, bad]])  # an image that breaks at encoding time is skipped and counted
    assert collator.skipped["unusable sample"] == 1 and batch["image_grid_thw"].shape[0] == 1


def test_measuring_in_several_processes_gives_the_same_plan(tiny, tmp_path):
    """An Arrow training set measured by 2 processes: same lengths, same unreadable samples as serially."""
    from medmo.data.synthetic import write_cell_set
    from medmo.train.sft import sft_dataset

    _, processor = tiny
    records = write_cell_set(tmp_path, "cells", 6, n_vqa=4, image_size=96)
    first_image = tmp_path / json.loads(records.read_text().splitlines()[0])["images"][0]
    base, _ = sft_dataset([str(records)], tmp_path / "dataset")
    first_image.write_bytes(b"not an image")  # breaks after the set was built: found while measuring
    serial = plan_for(base, processor, 200)
    parallel = plan_for(base, processor, 200, num_proc=2)
    assert parallel.lengths == serial.lengths and parallel.packs == serial.packs
    assert parallel.unreadable == serial.unreadable == [0]


def test_packed_run_logs_real_token_counts(tiny_dir, tmp_path):
    """TRL's num_tokens counts rows of a packed batch (position ids [4, B, L]); medmo logs the
    real tokens of the samples each step trained on, read back from the run's id trace."""
    from medmo.data.synthetic import write_cell_set
    from medmo.model.load import load_processor
    from medmo.train.callbacks import read_log
    from medmo.train.sft import SFTCollator, SFTConfig, run

    records = write_cell_set(tmp_path, "cells", 6, n_vqa=4, image_size=96)
    out = tmp_path / "run"
    cfg = SFTConfig(model=str(tiny_dir), data=[str(records)], output_dir=str(out), packing=True, max_length=200,
                    per_device_train_batch_size=2, max_steps=2, logging_steps=1, warmup_steps=0, save_steps=100,
                    trace_ids=True)
    run(cfg)
    rows = [r for r in read_log(out / "log.jsonl") if "loss" in r]
    batches = [json.loads(line)["ids"] for line in (out / "sample_ids.rank0.jsonl").read_text().splitlines()][:2]
    base = {json.loads(line)["id"]: json.loads(line) for line in records.read_text().splitlines()}
    collator = SFTCollator(load_processor(tiny_dir))
    tokens, trained = [], []
    for ids in batches:  # each sample alone, unpadded: its real and its assistant tokens
        alone = [collator([{"id": i, "messages": base[i]["messages"],
                            "images": [str(tmp_path / p) for p in base[i]["images"]]}]) for i in ids]
        tokens.append(sum(int(b["attention_mask"].sum()) for b in alone))
        trained.append(sum(int((b["labels"] != -100).sum()) for b in alone))
    assert [r["step"] for r in rows] == [1, 2]
    assert [r["num_tokens"] for r in rows] == [tokens[0], tokens[0] + tokens[1]]
    assert [r["num_trained_tokens"] for r in rows] == [trained[0], trained[0] + trained[1]]
    assert [r["tokens_per_step"] for r in rows] == tokens and [r["trained_tokens_per_step"] for r in rows] == trained
    assert rows[0]["num_tokens"] > 10 * cfg.per_device_train_batch_size  # not a count of rows
