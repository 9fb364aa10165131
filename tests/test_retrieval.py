"""Retrieval as a training task: caption records -> image-to-caption multiple choice with hard negatives."""
from __future__ import annotations

import json
from collections import Counter

import pytest
from PIL import Image

from medmo.data.retrieval import RetrievalConfig, build, jaccard, shorten, words
from medmo.data.schema import iter_jsonl, validate_record, write_jsonl
from medmo.data.sources._report import caption_record
from medmo.eval.tasks import score_by_task

CAPTIONS = [  # (modality, split, caption): CT liver captions share words, so they are each other's hard negatives
    ("ct", "train", "Axial CT of the abdomen showing a hypodense liver lesion."),
    ("ct", "train", "Contrast enhanced CT of the abdomen with a hyperdense liver lesion in segment four."),
    ("ct", "train", "Axial CT of the chest showing a right lower lobe nodule."),
    ("ct", "train", "CT of the pelvis with a fractured left acetabulum."),
    ("ct", "train", "Axial CT of the abdomen showing a hypodense liver lesion."),  # same text as the first, another image
    ("ct", "train", "AXIAL  CT of the abdomen showing a hypodense liver lesion"),  # a paraphrase of the first
    ("mri", "train", "Sagittal T1-weighted MRI of the lumbar spine with disc herniation."),
    ("mri", "train", "Axial FLAIR MRI of the brain showing periventricular lesions."),
    ("xray", "test", "Chest radiograph with a right-sided pleural effusion."),
    ("xray", "test", "Chest radiograph with cardiomegaly and pulmonary edema."),
    ("xray", "test", "Frontal chest radiograph showing a left pneumothorax."),
]


@pytest.fixture()
def captions(tmp_path):
    src = tmp_path / "captions"
    src.mkdir()
    recs = []
    for i, (modality, split, text) in enumerate(CAPTIONS):
        img = src / f"img{i}.png"
        Image.new("L", (8, 8), i * 10).save(img)
        recs.append(caption_record(rid=f"cap/{split}/{i}", source="cap", split=split, image=str(img), caption=text,
                                   modality=modality))
    write_jsonl(recs, src / "cap-00000.jsonl")
    return src


def _build(captions, tmp_path, **kw):
    out = build(RetrievalConfig(src=str(captions), out=str(tmp_path / "ret"), **kw))
    return [r for f in sorted(out.glob("retrieval-*.jsonl")) for r in iter_jsonl(f)], json.loads(
        (out / "report.json").read_text())


def test_every_caption_becomes_a_valid_question_with_its_caption_at_the_letter(captions, tmp_path):
    recs, report = _build(captions, tmp_path, choices=3)
    assert report["kept"] == len(recs) == len(CAPTIONS)
    by_id = {f"cap/{s}/{i}": t for i, (_, s, t) in enumerate(CAPTIONS)}
    for r in recs:
        validate_record(r)
        assert r["task"] == "retrieval" and len(r["answer"]["choices"]) == 3
        assert r["answer"]["choices"][r["answer"]["letter"]] == " ".join(by_id[r["meta"]["caption_id"]].split())
        assert r["messages"][1]["content"].startswith(r["answer"]["letter"] + ".")


def test_negatives_are_hard_same_split_and_never_a_second_right_answer(captions, tmp_path):
    recs, _ = _build(captions, tmp_path, choices=3)
    first = next(r for r in recs if r["meta"]["caption_id"] == "cap/train/0")
    neg_ids = first["meta"]["negative_ids"]
    # the most similar distinct CT caption is the other liver lesion; the same text (img 4) and the
    # paraphrase (img 5) are never options, so the question has one right answer
    assert neg_ids[0] == "cap/train/1"
    assert "cap/train/4" not in neg_ids and "cap/train/5" not in neg_ids
    for r in recs:
        texts = [" ".join(t.lower().split()) for t in r["answer"]["choices"].values()]
        assert len(set(texts)) == len(texts)
        split = r["split"]
        assert all(n.split("/")[1] == split for n in r["meta"]["negative_ids"])  # no test caption in a train question


def test_letters_are_spread_and_the_build_is_deterministic(captions, tmp_path):
    recs, _ = _build(captions, tmp_path, choices=3)
    again = build(RetrievalConfig(src=str(captions), out=str(tmp_path / "again"), choices=3))
    assert (tmp_path / "ret" / "retrieval-00000.jsonl").read_bytes() == (again / "retrieval-00000.jsonl").read_bytes()
    assert len(Counter(r["answer"]["letter"] for r in recs)) >= 2


def test_a_split_with_too_few_captions_is_counted_not_fatal(captions, tmp_path):
    recs, report = _build(captions, tmp_path, choices=4)  # the test split has 3 captions: no 4-option question
    assert {r["split"] for r in recs} == {"train"}
    assert report["dropped"]["by_reason"] == {"too_few_negatives": 3}


def test_no_caption_source_is_a_clear_error(tmp_path):
    src = tmp_path / "empty"
    src.mkdir()
    write_jsonl([], src / "x-00000.jsonl")
    with pytest.raises(ValueError, match="convert a caption source"):
        build(RetrievalConfig(src=str(src), out=str(tmp_path / "o")))
    with pytest.raises(ValueError, match="choices"):
        RetrievalConfig(src="a", out="b", choices=1)


@pytest.mark.parametrize("response,correct", [
    ("{letter}", True),                       # the letter alone
    ("{letter}. the caption", True),          # the trained target form
    ("{other}", False),                       # another option
    ("", False),                              # nothing
])
def test_retrieval_is_scored_as_multiple_choice(captions, tmp_path, response, correct):
    recs, _ = _build(captions, tmp_path, choices=3)
    r = recs[0]
    other = next(k for k in r["answer"]["choices"] if k != r["answer"]["letter"])
    scored = score_by_task(r, response.format(letter=r["answer"]["letter"], other=other))
    assert scored["correct"] is correct


@pytest.mark.parametrize("text,limit,want", [
    ("short caption", 50, "short caption"),
    ("one two three four five six", 14, "one two…"),
    ("line\nbreaks   collapse", 50, "line breaks collapse"),
])
def test_shorten(text, limit, want):
    assert shorten(text, limit) == want


def test_words_and_similarity():
    assert words("The CT of THE liver, arrow") == {"liver"}
    assert jaccard(words("liver lesion"), words("liver lesion")) == 1.0
    assert jaccard(words("liver lesion"), words("brain tumour")) == 0.0


def test_a_failed_build_keeps_the_previous_output(captions, tmp_path):
    out, _ = _build(captions, tmp_path, choices=3)
    before = (tmp_path / "ret" / "retrieval-00000.jsonl").read_bytes()
    with pytest.raises(ValueError, match="no retrieval question"):
        build(RetrievalConfig(src=str(captions), out=str(tmp_path / "ret"), choices=26))  # too few captions anywhere
    assert (tmp_path / "ret" / "retrieval-00000.jsonl").read_bytes() == before
