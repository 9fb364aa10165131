"""`medmo data overlap`: exact / near-duplicate images, near-duplicate questions, the drop flag."""
from __future__ import annotations

import json
import random
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance
from pydicom.data import get_testdata_file

from data_helpers import vqa, write_folder
from medmo.cli import main
from medmo.data.overlap import (OverlapConfig, PHashIndex, chunk_keys, jaccard, normalize, record_text, run,
                                 shingles)
from medmo.data.shards import iter_records
from medmo.imaging import open_image

LONG_Q = ("A 45-year-old man presents with crushing chest pain radiating to the left arm for two hours. "
          "Which of the following is the most appropriate next step in management?")


def mcq(rid, question, source, split):
    d = vqa(rid, question, "A", [], source=source, split=split, modality="text")
    d.update(task="mcq", answer={"choices": {"A": "ECG", "B": "CT"}, "letter": "A"})
    return d


@pytest.fixture
def sets(tmp_path, shared_data):
    bench_imgs = [str(p) for p in sorted((shared_data / "vqa_rad" / "images").glob("*.jpg"))[:3]]
    ct = get_testdata_file("CT_small.dcm", download=False)
    bench = [vqa(f"b/{i}", f"what organ {i}?", "liver", [p], source="bench_vqa", split="test")
             for i, p in enumerate(bench_imgs)]
    bench.append(vqa("b/ct", "is this a ct?", "yes", [ct], source="bench_vqa", split="test"))
    bench.append(mcq("b/mcq", LONG_Q, "bench_mcq", "test"))
    bench.append(mcq("b/short", "Is there a pneumothorax in this image?", "bench_mcq", "test"))

    train_dir = tmp_path / "train_img"
    train_dir.mkdir()
    shutil.copy(bench_imgs[0], train_dir / "copy.png")                              # same bytes
    im = Image.open(bench_imgs[1])
    ImageEnhance.Contrast(im).enhance(1.2).save(train_dir / "edited.jpg", quality=85)  # edited, re-encoded
    open_image(ct).save(train_dir / "ct_export.png")                                # DICOM exported as PNG
    other = str(sorted((shared_data / "vqa_rad" / "images").glob("*.jpg"))[3])
    edited = LONG_Q.replace("two hours", "2 hours").replace("?", " ?").upper()
    train = [
        vqa("t/copy", "q a", "x", [str(train_dir / "copy.png")]),
        vqa("t/edit", "q b", "x", [str(train_dir / "edited.jpg")]),
        vqa("t/ct", "q c", "x", [str(train_dir / "ct_export.png")]),
        vqa("t/other", "q d", "x", [other]),
        mcq("t/mcq", edited, "train_mcq", "train"),
        mcq("t/short", "Is there a pneumothorax in this image?", "train_mcq", "train"),
        mcq("t/diff", "A 3-year-old girl has a fever and a rash on her palms and soles for five days. "
                      "What is the most likely diagnosis?", "train_mcq", "train"),
    ]
    return write_folder(tmp_path / "train", train, shard_size=3), write_folder(tmp_path / "bench", bench)


def test_finds_each_kind_and_nothing_else(sets, tmp_path):
    train, bench = sets
    out = run(OverlapConfig(train=str(train), bench=str(bench), out=str(tmp_path / "rep")))
    matches = [json.loads(line) for line in (out / "matches.jsonl").read_text().splitlines()]
    got = {(m["train_id"], m["bench_id"]): m["kind"] for m in matches}
    assert got == {
        ("t/copy", "b/0"): "image_exact",
        ("t/edit", "b/1"): "image_near",
        ("t/ct", "b/ct"): "image_near",       # the DICOM and its PNG export
        ("t/mcq", "b/mcq"): "text",          # case, punctuation and "two" -> "2" edits
    }  # t/short: too short to count; t/other and t/diff: unrelated
    report = json.loads((out / "overlap.json").read_text())
    assert report["train_records_overlapping"] == 4 and report["bench_records_overlapping"] == 4
    assert report["matches_by_kind"] == {"image_exact": 1, "image_near": 2, "text": 1, "question": 0}
    assert report["overlapping_bench_by_source"] == {"bench_mcq": 1, "bench_vqa": 3}
    assert "| image_near | 2 |" in (out / "overlap.md").read_text()


def test_thresholds_are_respected(sets, tmp_path):
    train, bench = sets
    out = run(OverlapConfig(train=str(train), bench=str(bench), out=str(tmp_path / "r0"), image_distance=0,
                            text_similarity=1.0, min_text_chars=10))
    kinds = {json.loads(x)["train_id"]: json.loads(x)["kind"] for x in (out / "matches.jsonl").read_text().split("\n") if x}
    assert kinds.get("t/copy") == "image_exact"
    assert kinds.get("t/ct") == "image_near"  # identical pixels, different files: distance 0
    assert "t/mcq" not in kinds        # edited text is not identical
    assert kinds.get("t/short") == "text"  # identical once short texts are allowed


def test_drop_writes_the_clean_training_set(sets, tmp_path):
    train, bench = sets
    clean = tmp_path / "clean"
    assert main(["data", "overlap", str(train), str(bench), "--out", str(tmp_path / "r"), "--drop", str(clean)]) == 0
    ids = sorted(d["id"] for d, _ in iter_records(clean))
    assert ids == ["t/diff", "t/other", "t/short"]
    report = json.loads((tmp_path / "r" / "overlap.json").read_text())
    assert report["drop"]["dropped"] == 4 and report["drop"]["kept"] == 3


@pytest.mark.parametrize("text,expected", [
    ("<image>\nIs THIS a  CT?", "is this a ct"),   # placeholder, case, punctuation, spaces
    ("Ｆｕｌｌ-width", "full width"),              # NFKC folds full-width letters
    ("肺部有结节吗？", "肺部有结节吗"),              # CJK kept, CJK punctuation dropped
])
def test_normalize(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize("record,expected", [
    (vqa("x", "What is it?", "a", []), "what is it"),                       # vqa: meta.question
    ({"task": "report", "answer": {"findings": "No effusion.", "impression": "Normal."}, "messages": []},
     "no effusion normal"),                                                 # report: the reference
    ({"task": "grounding", "messages": [{"role": "user", "content": "Locate the mass."}]}, ""),  # templates: none
])
def test_record_text(record, expected):
    assert record_text(record) == expected


def test_jaccard_table():
    a, b = shingles("abcdefgh", 3), shingles("abcdefgx", 3)
    assert jaccard(a, a) == 1.0                 # identical
    assert jaccard(a, b) == pytest.approx(5 / 7)  # 5 shared of 7 distinct 3-grams
    assert jaccard(a, shingles("zzzzzz", 3)) == 0.0


@settings(max_examples=200, deadline=None)
@given(h=st.integers(0, 2**64 - 1), distance=st.integers(0, 16), seed=st.integers(0, 10**6))
def test_pigeonhole_buckets_never_miss_a_near_hash(h, distance, seed):
    flips = random.Random(seed).sample(range(64), random.Random(seed + 1).randint(0, distance))
    g = h
    for bit in flips:
        g ^= 1 << bit
    assert set(chunk_keys(h, distance)) & set(chunk_keys(g, distance))


def test_config_errors():
    with pytest.raises(ValueError, match="image_distance"):
        OverlapConfig(train="a", bench="b", image_distance=40)
    with pytest.raises(ValueError, match="drop_on"):
        OverlapConfig(train="a", bench="b", drop_on=["images"])


def test_generic_image_questions_are_not_text_leaks(tmp_path, shared_data):
    imgs = [str(p) for p in sorted((shared_data / "vqa_rad" / "images").glob("*.jpg"))[:4]]
    q = "What imaging modality was used to take this image of the patient?"
    bench = write_folder(tmp_path / "bench", [vqa(f"b/{i}", q, "ct", [imgs[i]], split="test") for i in range(3)])
    train = write_folder(tmp_path / "train", [vqa("t/0", q, "mri", [imgs[3]])])
    report = json.loads((run(OverlapConfig(train=str(train), bench=str(bench))) / "overlap.json").read_text())
    assert report["train_records_overlapping"] == 0 and report["bench_texts_generic"] == 3
    # counted once allowed, as a weak "question" match that the default drop_on keeps
    out = run(OverlapConfig(train=str(train), bench=str(bench), out=str(tmp_path / "r2"), generic_repeats=4,
                            drop=str(tmp_path / "clean")))
    report = json.loads((out / "overlap.json").read_text())
    assert report["matches_by_kind"] == {"image_exact": 0, "image_near": 0, "text": 0, "question": 3}
    assert report["drop"]["kept"] == 1


@pytest.mark.parametrize("distance", [0, 4, 6, 16])
def test_phash_buckets_equal_the_full_scan(distance):
    rng = random.Random(distance)
    hashes = [rng.getrandbits(64) for _ in range(3000)]
    buckets, scan = PHashIndex(distance, scan_below=0), PHashIndex(distance, scan_below=10**9)
    for i, h in enumerate(hashes):
        buckets.add(h, i // 2)  # two hashes per record, as for two-image records
        scan.add(h, i // 2)
    buckets.build()
    scan.build()
    for k in range(300):
        q = hashes[rng.randrange(len(hashes))] if k % 2 else rng.getrandbits(64)
        for bit in rng.sample(range(64), rng.randint(0, distance)):
            q ^= 1 << bit
        assert buckets.query(q) == scan.query(q)


def test_drop_into_an_input_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="would write into an input folder"):
        OverlapConfig(train=str(tmp_path), bench="b", drop=str(tmp_path))
