"""Training sets streamed into memory-mapped Arrow (medmo.train.data): rows, skips, reuse, rebuild."""
import json
import os

import pytest

from medmo.train.data import build_dataset
from medmo.train.grpo import grpo_row
from medmo.train.sft import sft_dataset, sft_row
from tests.data_helpers import vqa, write_folder, write_images


@pytest.fixture
def folder(tmp_path):
    """Six records in two JSONL shards: four usable, one image missing, one without an answer turn."""
    images = write_images(tmp_path / "images", 4)
    good = [vqa(f"r{i}", f"question {i}?", "yes", [images[i]]) for i in range(4)]
    missing = vqa("gone", "where?", "no", [str(tmp_path / "images" / "nowhere.png")])
    unanswered = vqa("open", "what?", "x", [images[0]])
    unanswered["messages"] = unanswered["messages"][:1]
    return write_folder(tmp_path / "records", [good[0], missing, good[1], unanswered, good[2], good[3]],
                        shard_size=3)


def test_rows_decode_and_skips_are_counted_by_reason(folder, tmp_path):
    dataset, skipped = sft_dataset([str(folder)], tmp_path / "ds")
    assert skipped == {"missing image": 1, "no assistant turn": 1}
    assert [r["id"] for r in dataset] == ["r0", "r1", "r2", "r3"]  # shard order, skipped ones left out
    assert dataset[1]["messages"][0] == {"role": "user", "content": "<image>\nquestion 1?"}  # JSON decoded
    assert dataset.cache_files and dataset.cache_files[0]["filename"].endswith(".arrow")  # memory-mapped


def test_several_processes_build_the_same_set(folder, tmp_path):
    """One Arrow part per record file, read back in file order: same rows, same skips as one process."""
    serial, serial_skips = sft_dataset([str(folder)], tmp_path / "one")
    parallel, parallel_skips = sft_dataset([str(folder)], tmp_path / "two", num_proc=2)
    assert list(parallel) == list(serial) and parallel_skips == serial_skips
    assert len(parallel.cache_files) == 2  # both shards gave rows: two memory-mapped parts
    again, _ = sft_dataset([str(folder)], tmp_path / "two", num_proc=1)  # reused, whatever num_proc
    assert list(again) == list(serial)


@pytest.mark.parametrize("max_samples, want", [
    (None, 4),  # every usable record
    (2, 2),     # stops reading once two rows are written
    (10, 4),    # more than there are: all of them
])
def test_max_samples_counts_usable_rows(folder, tmp_path, max_samples, want):
    dataset, _ = sft_dataset([str(folder)], tmp_path / "ds", max_samples)
    assert len(dataset) == want


def test_the_file_is_reused_until_an_input_changes(folder, tmp_path, caplog):
    calls = []

    def counting_row(rec, base):
        calls.append(rec.id)
        return sft_row(rec, base)

    first, skipped = build_dataset([str(folder)], counting_row, tmp_path / "ds", json_columns=("messages",))
    assert len(calls) == 6
    again, skipped_again = build_dataset([str(folder)], counting_row, tmp_path / "ds", json_columns=("messages",))
    assert len(calls) == 6, "an unchanged input must not be read again (other ranks, resumed runs)"
    assert list(again) == list(first) and skipped_again == skipped  # the skip counts survive the reuse

    shard = sorted(folder.glob("*.jsonl"))[-1]
    lines = shard.read_text().splitlines()
    shard.write_text("\n".join(lines[:-1]) + "\n")  # one record fewer
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))
    rebuilt, _ = build_dataset([str(folder)], counting_row, tmp_path / "ds", json_columns=("messages",))
    assert len(calls) == 11 and len(rebuilt) == 3
    assert "changed since" in caplog.text  # a resumed run is told its data moved under it


def test_invalid_records_are_skipped_with_their_reason(folder, tmp_path, caplog):
    shard = sorted(folder.glob("*.jsonl"))[0]
    bad = {**json.loads(shard.read_text().splitlines()[0]), "id": "bad", "task": "segmentation"}
    shard.write_text(shard.read_text() + json.dumps(bad) + "\n")
    _, skipped = sft_dataset([str(folder)], tmp_path / "ds")
    assert skipped["invalid record"] == 1
    assert "task 'segmentation' is not one of" in caplog.text  # the first skips are logged with the cause


@pytest.mark.parametrize("lines, message", [
    ([], "the files are empty"),                                  # nothing at all
    (["no_answer"], "no assistant turn"),                         # every record skipped: the reasons are named
])
def test_no_usable_record_is_an_error_naming_why(tmp_path, lines, message):
    rec = vqa("q", "what?", "x", [])
    rec["messages"] = rec["messages"][:1]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(rec) + "\n" for _ in lines))
    with pytest.raises(ValueError, match=message):
        sft_dataset([str(path)], tmp_path / "ds")


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_parquet_shards_and_text_only_records(tmp_path, fmt):
    """Shards of either format; a text-only record (no image) is a row like any other."""
    images = write_images(tmp_path / "images", 1)
    text_only = vqa("t", "What is the first-line drug for X?", "drug Y", [])
    path = write_folder(tmp_path / "records", [vqa("i", "normal?", "yes", images), text_only], fmt=fmt)
    dataset, skipped = sft_dataset([str(path)], tmp_path / "ds")
    assert not skipped and [r["images"] for r in dataset] == [images, []]
    assert dataset[1]["messages"][1]["content"] == "drug Y"


def test_a_missing_record_path_names_itself(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        sft_dataset([str(tmp_path / "nowhere.jsonl")], tmp_path / "ds")


def test_grpo_rows_of_different_shapes_share_one_schema(tmp_path):
    """Boxes with an image size and VQA answers without one land in one table (JSON columns)."""
    images = write_images(tmp_path / "images", 2)
    closed = vqa("v", "normal?", "yes", [images[0]])
    grounding = {**vqa("g", "find the nodule", "nodule <box>[[1, 2, 30, 40]]</box>", [images[1]]), "task": "grounding",
                 "answer": {"boxes": [{"bbox": [1, 2, 30, 40], "label": "nodule"}], "image_size": [48, 40]}}
    path = write_folder(tmp_path / "records", [closed, grounding])
    dataset, skipped = build_dataset([str(path)], grpo_row, tmp_path / "ds", json_columns=("prompt", "image_size"))
    assert not skipped
    first, second = dataset[0], dataset[1]
    assert first["image_size"] is None and second["image_size"] == [48, 40]
    assert json.loads(second["answer"])["boxes"][0]["label"] == "nodule"
