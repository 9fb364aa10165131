"""`medmo data convert`: shards, report.json, drops by reason, idempotence, clear errors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medmo.cli import main
from medmo.data.convert import ConvertConfig, run
from medmo.data.schema import Record
from medmo.data.shards import iter_records, shard_files
from medmo.data.sources import SOURCES, Source

TOY_DOC = """Toy release for tests: one JSON file, a list of {"q", "a", "image"} objects.

Point `raw` at toy.json; images are paths relative to it."""


def _toy_convert(raw, drops, split=None):
    raw = Path(raw)
    if raw.suffix != ".json":
        raise ValueError(f"{raw} is not a .json file")
    for i, row in enumerate(json.loads(raw.read_text())):
        if not isinstance(row, dict) or "q" not in row:
            drops.add("malformed_row", f"row {i}")
            continue
        images = [str(raw.parent / row["image"])] if row.get("image") else []
        prompt = "<image>\n" * len(images) + row["q"]
        yield Record(id=f"toy/train/{i}", source="toy", split="train", task="vqa", modality="ct", images=images,
                     messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": row["a"]}],
                     answer={"text": row["a"], "closed": False})


@pytest.fixture
def toy(tmp_path):
    """A registered `toy` source and a release with 6 good rows, 1 malformed row, 1 missing and 1 broken image."""
    SOURCES.add("toy", Source("toy", _toy_convert, ("vqa",), "ct", TOY_DOC))
    from data_helpers import write_images

    raw = tmp_path / "raw"
    names = [Path(p).name for p in write_images(raw / "images", 3)]
    (raw / "images" / "broken.png").write_bytes(b"\x89PNG but not really")
    rows = [{"q": f"What is shown {i}?", "a": "a lesion", "image": f"images/{names[i % 3]}"} for i in range(6)]
    rows += [["not", "a", "dict"], {"q": "missing?", "a": "x", "image": "images/gone.png"},
             {"q": "broken?", "a": "x", "image": "images/broken.png"}]
    (raw / "toy.json").write_text(json.dumps(rows))
    yield raw / "toy.json"
    SOURCES._items.pop("toy")


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "config.yaml"}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_convert_shards_report_and_idempotence(toy, tmp_path, fmt):
    out = run(ConvertConfig(source="toy", raw=str(toy), out=str(tmp_path / "out"), format=fmt, shard_size=3))
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 8 and report["kept_by_split"] == {"train": 8}
    assert report["dropped"]["by_reason"] == {"malformed_row": 1}
    assert report["shards"] == [f"toy-00000.{fmt}", f"toy-00001.{fmt}", f"toy-00002.{fmt}"]
    recs = [d for d, _ in iter_records(out)]
    assert [r["id"] for r in recs] == [f"toy/train/{i}" for i in (0, 1, 2, 3, 4, 5, 7, 8)]
    assert all(Path(p).is_absolute() for r in recs for p in r["images"])
    first = _bytes(out)
    run(ConvertConfig(source="toy", raw=str(toy), out=str(out), format=fmt, shard_size=3))
    assert _bytes(out) == first  # a re-run gives the same bytes
    assert not any(p.name.startswith(".staging") for p in out.iterdir())


def test_rerun_with_fewer_records_removes_stale_shards(toy, tmp_path):
    out = tmp_path / "out"
    run(ConvertConfig(source="toy", raw=str(toy), out=str(out), shard_size=2))
    assert len(shard_files(out)) == 4
    run(ConvertConfig(source="toy", raw=str(toy), out=str(out), shard_size=5))
    assert [p.name for p in shard_files(out)] == ["toy-00000.jsonl", "toy-00001.jsonl"]


@pytest.mark.parametrize("check,reasons,kept", [
    ("none", {"malformed_row": 1}, 8),                                          # paths not looked at
    ("exists", {"malformed_row": 1, "image_missing": 1}, 7),                    # gone.png counted
    ("decode", {"malformed_row": 1, "image_missing": 1, "image_unreadable": 1}, 6),  # broken.png too
])
def test_image_checks_count_failures_by_reason(toy, tmp_path, check, reasons, kept):
    out = run(ConvertConfig(source="toy", raw=str(toy), out=str(tmp_path / check), check_images=check))
    report = json.loads((out / "report.json").read_text())
    assert report["dropped"]["by_reason"] == reasons
    assert report["kept"] == kept


def test_wrong_path_and_wrong_format_say_what_was_expected(toy, tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)nope.json does not exist.*toy expects.*Point `raw` at toy.json"):
        run(ConvertConfig(source="toy", raw=str(tmp_path / "nope.json"), out=str(tmp_path / "o")))
    (tmp_path / "toy.csv").write_text("q,a\n")
    with pytest.raises(ValueError, match="(?s)not a .json file.*Point `raw` at toy.json"):
        run(ConvertConfig(source="toy", raw=str(tmp_path / "toy.csv"), out=str(tmp_path / "o")))


def test_everything_dropped_means_wrong_format(toy, tmp_path):
    (tmp_path / "other.json").write_text(json.dumps([["a"], ["b"]]))  # a JSON file of another layout
    with pytest.raises(ValueError, match="(?s)no record converted.*all 2 items dropped \\(malformed_row: 2; e.g. row 0\\).*It expects"):
        run(ConvertConfig(source="toy", raw=str(tmp_path / "other.json"), out=str(tmp_path / "o")))
    assert json.loads((tmp_path / "o" / "report.json").read_text())["dropped"]["total"] == 2


def test_config_errors():
    with pytest.raises(ValueError, match="format 'csv'"):
        ConvertConfig(source="toy", raw="x", out="y", format="csv")
    with pytest.raises(ValueError, match="check_images"):
        ConvertConfig(source="toy", raw="x", out="y", check_images="maybe")
    with pytest.raises(ValueError, match="parquet_layout 'arrow'"):
        ConvertConfig(source="toy", raw="x", out="y", format="parquet", parquet_layout="arrow")


@pytest.mark.parametrize("layout, nested", [("native", True), ("json", False)])
def test_cli_parquet_layout(toy, tmp_path, layout, nested):
    """--parquet-layout: native nested columns (the default) or the older JSON strings; medmo reads both."""
    import pyarrow.parquet as pq

    from medmo.data.schema import read_records

    args = ["data", "convert", "toy", "--raw", str(toy), "--out", str(tmp_path / "o"), "--format", "parquet"]
    assert main(args + ([] if layout == "native" else ["--parquet-layout", layout])) == 0
    shard = next((tmp_path / "o").glob("*.parquet"))
    messages = str(pq.read_schema(shard).field("messages").type)
    assert messages.startswith("list<") if nested else messages == "string"
    assert [r.answer for r in read_records(shard)][0] == {"text": "a lesion", "closed": False}


def test_cli(toy, tmp_path, capsys):
    assert main(["data", "convert", "toy", "--raw", str(toy), "--out", str(tmp_path / "o"), "--format", "parquet",
                 "--check-images", "exists"]) == 0
    assert json.loads((tmp_path / "o" / "report.json").read_text())["kept"] == 7
    assert main(["data", "convert", "toyy", "--raw", str(toy), "--out", str(tmp_path / "o2")]) == 2
    assert "Did you mean 'toy'" in capsys.readouterr().err


def test_real_source_vqa_rad(shared_data, tmp_path):
    out = run(ConvertConfig(source="vqa_rad", raw=str(shared_data / "vqa_rad"), out=str(tmp_path / "vr"),
                            check_images="exists"))
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 451 and report["dropped"]["total"] == 0
    assert report["kept_by_task"] == {"vqa": 451}


def test_embedded_images_land_in_the_output_folder(tmp_path, shared_data):
    # VQA-RAD's Hugging Face layout: data/test-*.parquet with the image bytes inline
    import pyarrow as pa
    import pyarrow.parquet as pq

    jpgs = sorted((shared_data / "vqa_rad" / "images").glob("*.jpg"))[:2]
    rows = [{"image": {"bytes": p.read_bytes(), "path": p.name}, "question": f"is it normal {i}?", "answer": "yes"}
            for i, p in enumerate(jpgs + jpgs[:1])]  # the first image is asked about twice
    (tmp_path / "hf" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "hf" / "data" / "test-00000-of-00001.parquet")
    out = run(ConvertConfig(source="vqa_rad", raw=str(tmp_path / "hf"), out=str(tmp_path / "o"), check_images="decode"))
    recs = [d for d, _ in iter_records(out)]
    assert len(recs) == 3
    assert {Path(r["images"][0]).parent for r in recs} == {out / "images"}
    assert len(list((out / "images").iterdir())) == 2  # stored once each


def test_splits_can_share_a_folder(toy, tmp_path):
    out = tmp_path / "o"
    run(ConvertConfig(source="toy", raw=str(toy), out=str(out), split="train"))
    run(ConvertConfig(source="toy", raw=str(toy), out=str(out)))
    assert [p.name for p in shard_files(out)] == ["toy-00000.jsonl", "toy-train-00000.jsonl"]
    assert (out / "report-train.json").exists() and (out / "report.json").exists()


# ------------------------------------------------ atomic output: a kill never costs the old one


def _consistent(out: Path) -> dict:
    """The folder's report and shards agree (every listed shard, exactly the records it counts)."""
    report = json.loads((out / "report.json").read_text())
    assert sorted(p.name for p in shard_files(out)) == sorted(report["shards"])
    assert sum(1 for _ in iter_records(out)) == report["kept"]
    return report


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no clean-up (not an Exception, so no handler sees it)."""


def _kill_at_rename(monkeypatch, n: int) -> None:
    """The n-th os.rename of the swap is where the process dies."""
    import medmo.data.shards as shards

    calls, real = [], os.rename

    def rename(src, dst):
        calls.append(src)
        if len(calls) == n:
            raise _Killed()
        real(src, dst)

    monkeypatch.setattr(shards.os, "rename", rename)


@pytest.mark.parametrize("kill_at", [1, 2])
def test_a_kill_during_the_swap_keeps_the_previous_output(toy, tmp_path, monkeypatch, kill_at):
    out = tmp_path / "out"
    run(ConvertConfig(source="toy", raw=str(toy), out=str(out), shard_size=2))
    before = _bytes(out)
    assert _consistent(out)["kept"] == 8 and len(before) == 5  # 4 shards + report
    _kill_at_rename(monkeypatch, kill_at)
    with pytest.raises(_Killed):
        run(ConvertConfig(source="toy", raw=str(toy), out=str(out), shard_size=5))
    monkeypatch.undo()
    # 1: killed before anything moved; 2: killed with the old output moved aside, the new one not yet in:
    # the next reader (or run) renames the old one back
    assert out.exists() == (kill_at == 1)
    assert shard_files(out) and _consistent(out)["shards"] == ["toy-00000.jsonl", "toy-00001.jsonl", "toy-00002.jsonl", "toy-00003.jsonl"]
    assert _bytes(out) == before
    run(ConvertConfig(source="toy", raw=str(toy), out=str(out), shard_size=5))  # the next run completes normally
    assert _consistent(out)["shards"] == ["toy-00000.jsonl", "toy-00001.jsonl"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".out.lock"]  # no staging, no old folder


def test_a_run_that_fails_midway_leaves_the_previous_output(toy, tmp_path, monkeypatch):
    from medmo.data import shards

    out = tmp_path / "out"
    run(ConvertConfig(source="toy", raw=str(toy), out=str(out), shard_size=2))
    before = _bytes(out)
    real_write = shards.ShardWriter.write

    def write(self, record):
        if self.count == 5:
            raise _Killed()
        real_write(self, record)

    monkeypatch.setattr(shards.ShardWriter, "write", write)
    with pytest.raises(_Killed):
        run(ConvertConfig(source="toy", raw=str(toy), out=str(out), shard_size=2))
    assert _bytes(out) == before and _consistent(out)["kept"] == 8


def test_a_failed_conversion_keeps_the_previous_output_and_reports_beside_it(toy, tmp_path):
    out = tmp_path / "out"
    run(ConvertConfig(source="toy", raw=str(toy), out=str(out)))
    before = _bytes(out)
    (tmp_path / "bad.json").write_text(json.dumps([["x"], ["y"]]))
    with pytest.raises(ValueError, match="all 2 items dropped.*report.failed.json"):
        run(ConvertConfig(source="toy", raw=str(tmp_path / "bad.json"), out=str(out)))
    assert json.loads((out / "report.failed.json").read_text())["dropped"]["total"] == 2
    assert {k: v for k, v in _bytes(out).items() if k != "report.failed.json"} == before
    run(ConvertConfig(source="toy", raw=str(toy), out=str(out)))
    assert _bytes(out) == before  # a later good run leaves no stale failure report


def test_mix_is_swapped_in_atomically(toy, tmp_path, monkeypatch):
    from medmo.data.mixture import MixSource, MixtureConfig
    from medmo.data.mixture import run as mix

    src = run(ConvertConfig(source="toy", raw=str(toy), out=str(tmp_path / "conv")))
    cfg = MixtureConfig(name="m", out=str(tmp_path / "mix"), sources=[MixSource("toy", str(src))], shard_size=3)
    out = mix(cfg)
    before = _bytes(out)
    _kill_at_rename(monkeypatch, 2)
    with pytest.raises(_Killed):
        mix(MixtureConfig(name="m", out=str(tmp_path / "mix"), sources=[MixSource("toy", str(src))], shard_size=5))
    monkeypatch.undo()
    assert sum(1 for _ in iter_records(out)) == 8 and _bytes(out) == before


def test_a_relative_out_names_embedded_images_where_they_end_up(tmp_path, shared_data, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jpg = sorted((shared_data / "vqa_rad" / "images").glob("*.jpg"))[0]
    (tmp_path / "hf" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"image": {"bytes": jpg.read_bytes(), "path": jpg.name},
                                          "question": "normal?", "answer": "yes"}]),
                   tmp_path / "hf" / "data" / "test-00000-of-00001.parquet")
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # the second run replaces the first, carrying its images over
        run(ConvertConfig(source="vqa_rad", raw="hf", out="o", check_images="exists"))
    (rec, _), = iter_records(tmp_path / "o")
    assert Path(rec["images"][0]).parent == tmp_path / "o" / "images" and Path(rec["images"][0]).is_file()


def test_out_must_not_be_a_file(toy, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is a file"):
        run(ConvertConfig(source="toy", raw=str(toy), out=str(tmp_path / "notes.txt")))
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_runs_writing_one_folder_take_turns(tmp_path, monkeypatch):
    """Two splits converted at once: the second waits for the first and keeps its output."""
    import fcntl
    import threading

    from medmo.data import shards

    inside, go, waiting = threading.Event(), threading.Event(), threading.Event()
    real_flock = fcntl.flock

    def flock(f, op):
        if not op & fcntl.LOCK_NB and threading.current_thread().name == "second":
            waiting.set()  # the non-blocking try failed: it is about to wait
        return real_flock(f, op)

    monkeypatch.setattr(shards.fcntl, "flock", flock)
    out = tmp_path / "out"

    def first():
        with shards.replace_folder(out, carry=lambda name: True) as new:
            inside.set()
            go.wait()
            (new / "train.jsonl").write_text("{}\n")

    def second():
        with shards.replace_folder(out, carry=lambda name: True) as new:
            (new / "test.jsonl").write_text("{}\n")

    a = threading.Thread(target=first)
    a.start()
    inside.wait()
    b = threading.Thread(target=second, name="second")
    b.start()
    assert waiting.wait(60)
    go.set()
    a.join()
    b.join()
    assert sorted(p.name for p in out.iterdir()) == ["test.jsonl", "train.jsonl"]
