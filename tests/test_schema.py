"""The unified record: validation messages and JSONL/Parquet round trips."""
import pytest

from medmo.data.schema import Record, iter_jsonl, read_records, write_jsonl, write_parquet


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
