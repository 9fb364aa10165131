"""The unified record: validation messages, JSONL/Parquet round trips, and both Parquet
layouts (native nested columns, the older JSON strings) read by medmo and by HF datasets."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medmo.data.schema import (Record, iter_jsonl, iter_parquet, parquet_schema, read_records, write_jsonl,
                               write_parquet)
from medmo.data.shards import ShardWriter, iter_records


def rec(**kw):
    base = dict(id="s/0", source="s", split="test", task="grounding",
                messages=[{"role": "user", "content": "<image>Find it."}, {"role": "assistant", "content": "x"}],
                images=["a.png"], answer={"boxes": [{"bbox": [1, 2, 3, 4], "label": "x"}], "image_size": [10, 10]})
    base.update(kw)
    return Record(**base)


BAD = [
    (dict(task="detection"), "task 'detection'"),  # unknown task
    (dict(images=[]), "0 image"),  # placeholder without image
    (dict(answer={"boxes": [{"bbox": [1, 2, 3, 4]}]}), "image_size"),  # pixel boxes need their pixel space
    (dict(answer={"boxes": [[1, 2, 3, 4]], "image_size": [1, 1]}), "bbox"),  # wrong box shape
    (dict(messages=[]), "messages"),
]


@pytest.mark.parametrize("change,msg", BAD)
def test_invalid_records_name_the_problem(change, msg):
    with pytest.raises(ValueError, match=msg) as e:
        rec(**change)
    assert "s/0" in str(e.value)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_round_trip(tmp_path, fmt):
    records = [rec(id=f"s/{i}") for i in range(3)]
    path = tmp_path / f"r.{fmt}"
    (write_jsonl if fmt == "jsonl" else write_parquet)(records, path)
    back = read_records(path)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in records]
    assert back[0].prompt == "<image>Find it." and back[0].target == "x"


def test_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"id": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"r.jsonl:2"):
        list(iter_jsonl(p))


# ------------------------------------------------------------------ Parquet: native and JSON layouts
# one record per answer shape; each must come back as it went in from either layout
ANSWERS = [
    {"text": "yes", "closed": True},                                                   # closed VQA
    {"choices": {"A": "aspirin", "B": "heparin"}, "letter": "B"},                      # MCQ
    {"text": "full", "findings": "clear lungs", "impression": ""},                      # report, empty section
    {"boxes": [{"bbox": [1.5, 2.0, 30.25, 40.0], "label": "nodule"}, {"bbox": [0.0, 0.0, 4.0, 4.0]}],
     "image_size": [48, 40]},                                                          # grounding, one box unlabelled
    {},                                                                                # caption without reference
    {"text": "x", "closed": "yes", "score": 0.5, "extra": [1]},                        # odd types and keys: `extra`
    {"boxes": [{"bbox": [1.0, 2.0, 3.0, 4.0], "label": None, "iou": 0.3}], "image_size": [10.5, 10.0]},  # too
    {"letter": None, "choices": ["A", "B"]},                                           # None and a list: `extra`
]


def shaped(i: int, answer: dict) -> dict:
    return Record(id=f"s/{i}", source="s", split="test", task="vqa", images=["a.png"], answer=answer,
                  messages=[{"role": "user", "content": "<image>Q?"}, {"role": "assistant", "content": "A"}],
                  meta={"study": {"id": i, "views": ["PA", "LAT"]}}).to_dict()


@pytest.mark.parametrize("layout", ["native", "json"])
def test_every_answer_shape_round_trips(tmp_path, layout):
    records = [shaped(i, a) for i, a in enumerate(ANSWERS)]
    write_parquet(records, tmp_path / "r.parquet", layout=layout)
    assert list(iter_parquet(tmp_path / "r.parquet")) == records
    with ShardWriter(tmp_path / "shards", "s", "parquet", shard_size=3, layout=layout) as w:
        for r in records:
            w.write(r)
    assert [d for d, _ in iter_records(tmp_path / "shards")] == records


def test_native_layout_has_nested_columns_and_one_schema(tmp_path):
    write_parquet([shaped(0, ANSWERS[0])], tmp_path / "vqa.parquet")  # native is the default
    write_parquet([shaped(3, ANSWERS[3])], tmp_path / "grounding.parquet")
    schemas = [pq.read_schema(tmp_path / f"{n}.parquet") for n in ("vqa", "grounding")]
    assert schemas[0].equals(schemas[1]) and schemas[0].equals(parquet_schema("native"))
    s = schemas[0]
    assert s.field("messages").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    assert s.field("images").type == pa.list_(pa.string()) and pa.types.is_struct(s.field("answer").type)
    row = pq.read_table(tmp_path / "grounding.parquet").to_pylist()[0]
    assert row["answer"]["boxes"][0] == {"bbox": [1.5, 2.0, 30.25, 40.0], "label": "nodule"}
    assert row["answer"]["extra"] is None and json.loads(row["meta"]) == {"study": {"id": 3, "views": ["PA", "LAT"]}}


def test_old_json_string_shards_still_read(tmp_path):
    # what medmo wrote before the native layout: every nested field a JSON string, schema inferred
    records = [shaped(i, a) for i, a in enumerate(ANSWERS[:4])]
    rows = [{k: json.dumps(v) if k in ("images", "messages", "answer", "meta") else v for k, v in r.items()}
            for r in records]
    (tmp_path / "old").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "old" / "s-00000.parquet")
    assert [Record.from_dict(d).to_dict() for d, _ in iter_records(tmp_path / "old")] == records
    assert [r.to_dict() for r in read_records(tmp_path / "old" / "s-00000.parquet")] == records


def test_a_record_that_does_not_fit_native_fails_alone(tmp_path):
    bad = shaped(9, {})
    bad["messages"][0]["name"] = "radiologist"  # a message key the native struct has no field for
    with ShardWriter(tmp_path / "out", "s", "parquet", shard_size=2) as w:
        w.write(shaped(0, {}))
        with pytest.raises(ValueError, match=r"s/9: a message with keys other than role and content.*layout='json'"):
            w.write(bad)
        w.write(shaped(1, {}))
        w.write(shaped(2, {}))
    assert [d["id"] for d, _ in iter_records(tmp_path / "out")] == ["s/0", "s/1", "s/2"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s-00000.parquet", "s-00001.parquet"]
    with pytest.raises(ValueError, match="layout 'flat'"):
        ShardWriter(tmp_path / "x", "s", "parquet", layout="flat")


def test_hf_datasets_reads_converted_shards_as_records(shared_data, tmp_path, monkeypatch):
    """Two real sources converted to Parquet load in ONE load_dataset call, as nested records."""
    import datasets

    from medmo.data.convert import ConvertConfig, run

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    files = []
    for source in ("vqa_rad", "nih_chestxray14"):
        out = run(ConvertConfig(source=source, raw=str(shared_data / source), out=str(tmp_path / source),
                                format="parquet"))
        files += sorted(str(p) for p in out.glob("*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["messages"], datasets.List) and ds.features["answer"]["closed"].dtype == "bool"
    by_task = {row["task"]: row for row in ds}
    assert by_task["vqa"]["messages"][0]["role"] == "user" and isinstance(by_task["vqa"]["answer"]["closed"], bool)
    box = by_task["grounding"]["answer"]["boxes"][0]
    assert len(box["bbox"]) == 4 and box["label"] and by_task["grounding"]["answer"]["image_size"] == [1024, 1024]
    # and medmo reads the same files back as its records
    assert sum(1 for f in files for _ in iter_parquet(f)) == len(ds)


@pytest.fixture
def both_layouts(tmp_path):
    """The same six VQA records with images, as native and as JSON-string Parquet shards."""
    from tests.data_helpers import vqa, write_images

    images = write_images(tmp_path / "images", 6)
    records = [vqa(f"r{i}", f"question {i}?", "yes" if i % 2 else "no", [images[i]]) for i in range(6)]
    for layout in ("native", "json"):
        with ShardWriter(tmp_path / layout, "part", "parquet", shard_size=4, layout=layout) as w:
            for r in records:
                w.write(r)
    return tmp_path, records


def test_training_sets_build_the_same_from_both_layouts(both_layouts):
    from medmo.train.data import build_dataset, image_paths

    def row(rec, base):  # what the SFT and GRPO rows take from a record (their modules import torch)
        images = image_paths(rec, base)
        return images if isinstance(images, str) else {"id": rec.id, "messages": rec.messages, "images": images,
                                                       "answer": rec.answer}

    root, records = both_layouts
    built = {layout: list(build_dataset([str(root / layout)], row, root / f"ds-{layout}",
                                        json_columns=("messages", "answer"))[0]) for layout in ("native", "json")}
    assert built["native"] == built["json"] and [r["id"] for r in built["native"]] == [r["id"] for r in records]
    assert [(r["messages"], r["answer"]) for r in built["native"]] == [(r["messages"], r["answer"]) for r in records]


def test_mixing_reads_both_layouts_and_writes_native(both_layouts):
    from medmo.data.mixture import MixtureConfig, run

    root, records = both_layouts
    sources = [{"name": layout, "path": str(root / layout), "weight": 1.0} for layout in ("native", "json")]
    out = run(MixtureConfig(out=str(root / "mix"), sources=sources, format="parquet", shard_size=5))
    mixed = sorted(((d["id"], d["messages"], d["answer"], d["images"]) for d, _ in iter_records(out)), key=str)
    assert mixed == sorted([(r["id"], r["messages"], r["answer"], r["images"]) for r in records] * 2, key=str)
    assert all(pq.read_schema(p).equals(parquet_schema("native")) for p in out.glob("*.parquet"))
