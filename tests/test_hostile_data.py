"""Hostile rows through every converter that reads that kind of file: each is dropped and
counted by reason with its position, the good row beside it is kept, and nothing raises.

Each case builds a one-good-row release from a real fixture row (../shared/data or
tests/fixtures), then appends one hostile row; `medmo data convert` must keep the good
row, count exactly one drop, and name the hostile row's position in the report.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from medmo.data.convert import ConvertConfig, run
from medmo.data.shards import iter_records
from medmo.data.sources._qa import read_rows

FIXTURES = Path(__file__).parent / "fixtures"
BAD = b"\xc3\x28\xff\xfe"  # not UTF-8
MARK = "HOSTILE_MARK"


@dataclass
class Case:
    source: str
    fmt: str                          # "jsonl", "json" (a list), "json_splits" ({"test": [...]}), "csv"
    file: str                         # the release file, relative to raw
    template: Callable[[Path], Any]   # shared_data -> one good row (dict; for csv a dict of column -> text)
    pos: str | tuple[str, ...]        # how the report names the hostile row (the 2nd row)
    text_field: str                   # a field the converter needs (gets bad bytes / is removed / an int)
    image_field: str | None = None    # the image path field, relative to the release
    raw_is_file: bool = False


def _first(path: Path, **match) -> dict:
    return next(r for r in read_rows(path) if all(r.get(k) == v for k, v in match.items()))


CASES = [
    Case("slake", "json", "test.json", lambda d: _first(d / "slake" / "test.json", q_lang="en"), "test.json[1]",
         "question", "img_name"),
    Case("vqa_rad", "json", "testset.json", lambda d: _first(d / "vqa_rad" / "testset.json"), "testset.json[1]",
         "question", "image_name"),
    Case("omnimedvqa", "json", "QA_information/Open-access/set.json",
         lambda d: {"question": "Which modality?", "gt_answer": "CT", "image_path": "Images/set/a.png",
                    "option_A": "MRI", "option_B": "CT", "modality_type": "CT(Computed Tomography)"},
         "set.json[1]", "question", "image_path"),
    Case("medsg_bench", "json", "test.json",
         lambda d: {"task": "referring", "images": ["a.png"], "question": "Where is the liver?", "answer": [1, 2, 30, 40]},
         "test.json[1]", "question"),
    Case("iu_xray", "json_splits", "annotation.json",
         lambda d: json.loads((FIXTURES / "iu_xray" / "annotation.json").read_text())["test"][0],
         "annotation.json[test][1]", "image_path"),
    Case("medqa", "jsonl", "test.jsonl", lambda d: _first(d / "medqa" / "test.jsonl"), "test.jsonl:2", "question",
         raw_is_file=True),
    Case("mmlu_med", "jsonl", "test.jsonl", lambda d: _first(d / "mmlu" / "test.jsonl"), "test.jsonl:2", "question",
         raw_is_file=True),
    Case("medmcqa", "jsonl", "medmcqa_input.jsonl",
         lambda d: _first(d / "medmcqa" / "full_validation" / "medmcqa_input.jsonl"), "medmcqa_input.jsonl:2",
         "question", raw_is_file=True),
    Case("medxpertqa_text", "jsonl", "medxpertqa_sampled_text_input.jsonl",
         lambda d: _first(d / "medxpertqa" / "medxpertqa_sampled_text_input.jsonl"),
         "medxpertqa_sampled_text_input.jsonl:2", "question", raw_is_file=True),
    Case("pubmedqa", "jsonl", "test.jsonl", lambda d: {"question": "Does it work?", "context": ["An abstract."],
                                                       "final_decision": "yes", "pubid": "1"},
         ("row 1", "test.jsonl:2"), "question", raw_is_file=True),
    Case("supergpqa_med", "jsonl", "SuperGPQA-all.jsonl",
         lambda d: {"uuid": "u1", "question": "Which drug?", "options": ["aspirin", "heparin", "warfarin"],
                    "answer_letter": "B", "discipline": "Medicine"}, "SuperGPQA-all.jsonl:2", "question"),
    Case("pmc_oa", "jsonl", "test.jsonl", lambda d: _first(FIXTURES / "pmc_oa" / "test.jsonl"), "test.jsonl:2",
         "caption", "image"),
    Case("pmc_vqa", "csv", "test_2.csv",
         lambda d: {"Figure_path": "PMC1_F1.jpg", "Question": "Which modality?", "Answer": "CT", "Choice A": "A:MRI",
                    "Choice B": "B:CT", "Choice C": "C:PET", "Choice D": "D:US", "Answer_label": "B", "split": "test"},
         "test_2.csv:3", "Question", "Figure_path"),
    Case("chexpert_plus", "csv", "df_chexpert_plus_240401.csv",
         lambda d: _first(FIXTURES / "chexpert_plus" / "df_chexpert_plus_240401.csv"), "df_chexpert_plus_240401.csv:3",
         "split", "path_to_image"),
    Case("medbullets_op4", "csv", "medbullets_op4.csv",
         lambda d: {"question": "Next step?", "answer_idx": "A", "opa": "CT", "opb": "MRI", "opc": "Wait", "opd": "Surgery"},
         "medbullets_op4.csv:3", "question"),
    Case("deeplesion", "csv", "DL_info.csv", lambda d: _first(d / "deeplesion" / "DL_info_sample.csv"), "DL_info.csv:3",
         "Bounding_boxes", "File_name"),
]


def _csv_line(columns: list[str], row: dict) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerow([row.get(c, "") for c in columns])
    return buf.getvalue().encode("utf-8", "surrogatepass")


def _encode(case: Case, rows: list, columns: list[str]) -> bytes:
    """The release file holding `rows`; a row given as bytes is written as is."""
    if case.fmt == "csv":
        head = _csv_line(columns, {c: c for c in columns})
        return head + b"".join(r if isinstance(r, bytes) else _csv_line(columns, r) for r in rows)
    items = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows]
    if case.fmt == "jsonl":
        return b"\n".join(items) + b"\n"
    body = b"[" + b", ".join(items) + b"]"
    return b'{"test": ' + body + b"}" if case.fmt == "json_splits" else body


def _with(row: dict, **changes) -> dict:
    return {**row, **changes}


def _bad_bytes(case: Case, row: dict, columns: list[str]) -> bytes:
    marked = _with(row, **{case.text_field: MARK})
    line = _csv_line(columns, marked) if case.fmt == "csv" else json.dumps(marked).encode()
    return line.replace(MARK.encode(), BAD)


# hostile kind -> (applies to the case?, row builder, drop reasons that are right for it)
HOSTILE: dict[str, tuple] = {
    "string_row": (lambda c: c.fmt != "csv", lambda c, r, cols: "hello", {"row_not_object", "malformed_row", "unknown_task"}),
    "list_row": (lambda c: c.fmt != "csv", lambda c, r, cols: [1, 2], {"row_not_object", "malformed_row", "unknown_task"}),
    "null_row": (lambda c: c.fmt != "csv", lambda c, r, cols: None, {"row_not_object", "malformed_row", "unknown_task"}),
    # an integer where text is expected: dropped, or kept as its text ("12345" is a valid file name)
    "int_image": (lambda c: c.image_field and c.fmt != "csv", lambda c, r, cols: _with(r, **{c.image_field: 12345}),
                  {"bad_field_type"}),
    "int_text": (lambda c: c.fmt != "csv", lambda c, r, cols: _with(r, **{c.text_field: 12345}),
                 {"bad_field_type", "missing_field", "bad_value", "no_answer"}),
    "missing_field": (lambda c: True, lambda c, r, cols: {k: v for k, v in r.items() if k != c.text_field},
                      {"missing_field", "malformed_row", "malformed_item", "no_answer"}),
    "invalid_utf8": (lambda c: True, _bad_bytes, {"bad_encoding", "malformed_row"}),
    "lone_surrogate": (lambda c: c.fmt != "csv", lambda c, r, cols: _with(r, **{c.text_field: "a\ud800b"}),
                       {"bad_encoding"}),
    "nul_in_path": (lambda c: c.image_field, lambda c, r, cols: _with(r, **{c.image_field: "im\x00age.png"}),
                    {"bad_path"}),
    "dot_dot_path": (lambda c: c.image_field, lambda c, r, cols: _with(r, **{c.image_field: "../../../../../../etc/passwd"}),
                     {"image_outside_release"}),
    "absolute_path": (lambda c: c.image_field, lambda c, r, cols: _with(r, **{c.image_field: "/etc/passwd"}),
                      {"image_outside_release"}),
}
PAIRS = [(c, k) for c in CASES for k, (applies, _, _) in HOSTILE.items() if applies(c)]


def _release(tmp_path: Path, case: Case, rows: list, columns: list[str]) -> Path:
    root = tmp_path / "release"
    path = root / case.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_encode(case, rows, columns))
    return path if case.raw_is_file else root


def _template(case: Case, shared_data: Path) -> tuple[dict, list[str]]:
    row = {k: v for k, v in case.template(shared_data).items() if not k.startswith("_")}
    if case.fmt == "csv":
        row = {k: "" if v is None else str(v) for k, v in row.items()}
    return row, list(row)


def _convert(tmp_path: Path, case: Case, raw: Path, name: str = "out"):
    out = run(ConvertConfig(source=case.source, raw=str(raw), out=str(tmp_path / name)))
    report = json.loads(next(out.glob("report*.json")).read_text())
    return report, [d for d, _ in iter_records(out)]


@pytest.mark.parametrize("case,kind", PAIRS, ids=[f"{c.source}-{k}" for c, k in PAIRS])
def test_hostile_row_is_dropped_and_counted_with_its_position(tmp_path, shared_data, case, kind):
    row, columns = _template(case, shared_data)
    good, _ = _convert(tmp_path, case, _release(tmp_path / "good", case, [row], columns), "good")
    assert good["kept"] == 1 and good["dropped"]["total"] == 0, good["dropped"]  # the template converts alone
    _, build, reasons = HOSTILE[kind]
    report, records = _convert(tmp_path, case, _release(tmp_path, case, [row, build(case, row, columns)], columns))
    if kind.startswith("int_") and report["kept"] == 2:  # taken as text, never as a crash
        assert report["dropped"]["total"] == 0 and "12345" in json.dumps(records[1])
        return
    assert report["kept"] == 1 and len(records) == 1
    assert report["dropped"]["total"] == 1, report["dropped"]
    (reason, examples), = report["dropped"]["examples"].items()
    assert reason in reasons, report["dropped"]
    # a row's position (file:line, file[index]); an image path refused after the row became a
    # record is named with the record's id
    where = (case.pos,) if isinstance(case.pos, str) else case.pos
    if reason in ("image_outside_release", "bad_path"):
        where += (f"{case.source}/",)
    assert any(w in examples[0] for w in where), (where, examples)


def test_every_hostile_kind_is_exercised_for_every_file_kind():
    """The table covers JSON, JSONL and CSV releases with and without image fields."""
    kinds = {(c.fmt, bool(c.image_field)) for c, _ in PAIRS}
    assert {("json", True), ("json", False), ("jsonl", True), ("jsonl", False), ("csv", True), ("csv", False)} <= kinds
    assert {k for _, k in PAIRS} == set(HOSTILE)


# ------------------------------------------------------------- images, files and errors


def _vqa_rad_release(tmp_path: Path, shared_data: Path, n: int = 3) -> tuple[Path, list[dict]]:
    """A VQA-RAD release of `n` questions on distinct images, images copied."""
    rows, seen = [], set()
    for r in read_rows(shared_data / "vqa_rad" / "testset.json"):
        if r["image_name"] not in seen:
            seen.add(r["image_name"])
            rows.append(r)
        if len(rows) == n:
            break
    root = tmp_path / "vqa_rad"
    (root / "images").mkdir(parents=True)
    for r in rows:
        (root / "images" / r["image_name"]).write_bytes((shared_data / "vqa_rad" / "images" / r["image_name"]).read_bytes())
    (root / "testset.json").write_text(json.dumps(rows))
    return root, rows


def test_undecodable_images_and_paths_out_of_the_release(tmp_path, shared_data):
    root, rows = _vqa_rad_release(tmp_path, shared_data)
    (root / "images" / rows[1]["image_name"]).write_bytes(b"\x1f\x8b\x08\x00" + b"junk" * 64)  # gzip magic, not gzip
    secret = tmp_path / "outside.jpg"
    secret.write_bytes((root / "images" / rows[0]["image_name"]).read_bytes())
    (root / "images" / rows[2]["image_name"]).unlink()
    (root / "images" / rows[2]["image_name"]).symlink_to(secret)  # a symlink pointing out of the release
    report, records = _convert(tmp_path, Case("vqa_rad", "json", "", None, "", ""), root)
    assert report["kept"] == 2 and report["dropped"]["by_reason"] == {"image_outside_release": 1}
    out = run(ConvertConfig(source="vqa_rad", raw=str(root), out=str(tmp_path / "d"), check_images="decode"))
    report = json.loads((out / "report.json").read_text())
    assert report["dropped"]["by_reason"] == {"image_unreadable": 1, "image_outside_release": 1}
    assert rows[1]["image_name"] in report["dropped"]["examples"]["image_unreadable"][0]
    allowed = run(ConvertConfig(source="vqa_rad", raw=str(root), out=str(tmp_path / "a"), allow_outside_images=True))
    assert json.loads((allowed / "report.json").read_text())["kept"] == 3  # the flag keeps them


def test_the_error_wrapper_keeps_the_original_exception(tmp_path, shared_data):
    # a wrong release whose file is not UTF-8: UnicodeDecodeError takes 5 arguments, so type(e)(msg) would fail
    root = tmp_path / "pubmedqa"
    root.mkdir()
    shutil.copy(shared_data / "pubmedqa" / "ori_pqal.json", root)
    (root / "test_ground_truth.json").write_bytes(b'{"123": "yes\xff"}')
    with pytest.raises(ValueError, match="(?s)^pubmedqa: 'utf-8' codec can't decode.*expects") as err:
        run(ConvertConfig(source="pubmedqa", raw=str(root), out=str(tmp_path / "o")))
    assert isinstance(err.value.__cause__, UnicodeDecodeError)


def test_a_csv_field_over_the_size_limit_spoils_only_its_row(tmp_path):
    case = next(c for c in CASES if c.source == "pmc_vqa")
    row, columns = _template(case, Path("."))
    huge = _with(row, Question="why? " * 40_000)  # 200 KB: over the csv module's 128 KB field limit
    report, records = _convert(tmp_path, case, _release(tmp_path, case, [row, huge, row], columns))
    assert report["kept"] == 2 and report["dropped"]["by_reason"] == {"malformed_csv_row": 1}
    assert len(report["dropped"]["examples"]["malformed_csv_row"][0]) < 400  # examples stay short


def test_a_line_separator_inside_a_jsonl_string_is_not_a_line_break(tmp_path, shared_data):
    case = next(c for c in CASES if c.source == "medmcqa")
    row, columns = _template(case, shared_data)
    line = json.dumps(_with(row, question=row["question"] + "\u2028 and\u2029 more"), ensure_ascii=False).encode()
    report, records = _convert(tmp_path, case, _release(tmp_path, case, [row, line], columns))
    assert report["kept"] == 2 and "\u2028 and\u2029 more" in records[1]["messages"][0]["content"]


def test_first_examples_of_each_reason_are_logged(tmp_path, shared_data, caplog):
    case = next(c for c in CASES if c.source == "slake")
    row, columns = _template(case, shared_data)
    bad = [_with(row, img_name=k) for k in range(8)]  # 8 rows with an integer path
    report, _ = _convert(tmp_path, case, _release(tmp_path, case, [row, *bad], columns))
    assert report["dropped"]["by_reason"] == {"bad_field_type": 8}
    logged = [r.getMessage() for r in caplog.records if "bad_field_type" in r.getMessage()]
    assert any("test.json[1]" in m for m in logged) and not any("test.json[8]" in m for m in logged)


def test_a_record_with_a_lone_surrogate_is_counted_not_written(tmp_path):
    """The last line of defence: a converter that lets a lone surrogate through (no `keep`)."""
    from medmo.data.schema import Record
    from medmo.data.sources import SOURCES, Source

    def convert(raw, drops, split=None):
        for i, q in enumerate(["fine?", "bad \ud800?"]):
            yield Record(id=f"s/train/{i}", source="s", split="train", task="vqa", modality="ct", images=[],
                         messages=[{"role": "user", "content": q}, {"role": "assistant", "content": "yes"}],
                         answer={"text": "yes", "closed": True})

    SOURCES.add("surrogate_toy", Source("surrogate_toy", convert, ("vqa",), "ct", "toy"))
    try:
        (tmp_path / "raw").mkdir()
        out = run(ConvertConfig(source="surrogate_toy", raw=str(tmp_path / "raw"), out=str(tmp_path / "o")))
    finally:
        SOURCES._items.pop("surrogate_toy")
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 1 and report["dropped"]["by_reason"] == {"bad_encoding": 1}
    assert "s/train/1" in report["dropped"]["examples"]["bad_encoding"][0]
    assert (out / "surrogate_toy-00000.jsonl").read_text(encoding="utf-8").count("\n") == 1


@pytest.mark.parametrize("content", [b"5", b'"a string"', b"null"])
def test_a_json_release_that_is_not_a_list_or_object_is_a_clear_error(tmp_path, content):
    (tmp_path / "test.json").write_bytes(content)
    with pytest.raises(ValueError, match="expected a JSON list of rows or an object keyed by id"):
        run(ConvertConfig(source="slake", raw=str(tmp_path), out=str(tmp_path / "o")))


# converters that read rows through a shared helper whose loop is guarded
GUARDED_HELPERS = ("embedded_image_rows(", "pair_records(", "masks.convert(", "llava_records(")


def test_every_registered_converter_guards_its_rows():
    """A new source's row loop runs under `drops.guard` (or a guarded helper), so no row can end a conversion."""
    import inspect
    import sys

    from medmo.data.sources import SOURCES, source_names

    source_names()  # imports every source module
    unguarded = []
    for name in source_names():
        text = inspect.getsource(sys.modules[SOURCES.get(name).convert.__module__])
        if "drops.guard(" not in text and not any(h in text for h in GUARDED_HELPERS):
            unguarded.append(name)
    assert unguarded == [], f"converters without drops.guard around their rows: {unguarded}"
