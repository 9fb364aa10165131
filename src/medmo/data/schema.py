"""The unified Record (DESIGN.md) and its JSONL / Parquet IO.

Every source and task becomes the same JSON object. Ground-truth boxes are PIXELS of
the original image, with `answer.image_size` giving that pixel space; grid coordinates
are never stored. `validate_record` names the record and the field that is wrong.

Parquet comes in two layouts, both read everywhere (`from_row` tells them apart by value):

- "native" (the default for everything written now): nested columns any Arrow reader
  shows as records, e.g. `datasets.load_dataset("parquet", data_files=...)` or the Hub's
  viewer. `images` is list<string>, `messages` list<struct<role, content>>, and `answer`
  a struct with one typed field per key DESIGN.md lists (text, closed, choices as
  list<struct<letter, text>>, letter, findings, impression, boxes as
  list<struct<bbox: list<double>, label>>, image_size list<int64>) plus `extra`, a JSON
  string with any other key or any value of an unexpected type, so every source shares
  one schema and nothing is lost. `meta` stays a JSON string: it is free-form per source
  (file names, study ids, label lists), and a struct of the union of every source's keys
  would change the schema with each new source. Box coordinates come back as floats.
- "json" (what medmo wrote before): every nested field as a JSON string.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from medmo.model.chat import IMAGE_TOKEN

TASKS = ("vqa", "caption", "report", "grounding", "retrieval", "mcq")


@dataclass
class Record:
    id: str
    source: str
    split: str
    task: str
    messages: list[dict[str, str]]
    answer: dict[str, Any] = field(default_factory=dict)
    modality: str = "other"
    images: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        # a shallow view: asdict() would deep-copy every record just to read it
        validate_record({f: getattr(self, f) for f in self.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Record":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    @property
    def prompt(self) -> str:
        """The first user turn's text."""
        return next(m["content"] for m in self.messages if m["role"] == "user")

    @property
    def target(self) -> str | None:
        """The first assistant turn's text, if any."""
        return next((m["content"] for m in self.messages if m["role"] == "assistant"), None)


def validate_record(d: dict[str, Any]) -> None:
    """Raise ValueError naming the record id and the problem."""
    rid = d.get("id", "<no id>")
    for key in ("id", "source", "split", "task", "messages"):
        if key not in d:
            raise ValueError(f"record {rid}: missing field {key!r}")
    if d["task"] not in TASKS:
        raise ValueError(f"record {rid}: task {d['task']!r} is not one of {', '.join(TASKS)}")
    msgs = d["messages"]
    if not isinstance(msgs, list) or not msgs or not all(
        isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
        for m in msgs
    ):
        raise ValueError(f"record {rid}: messages must be a non-empty list of {{role, content}} dicts")
    images = d.get("images") or []
    n_tokens = sum(m["content"].count(IMAGE_TOKEN) for m in msgs)
    if n_tokens != len(images):
        raise ValueError(f"record {rid}: {len(images)} image(s) but {n_tokens} {IMAGE_TOKEN} placeholder(s) in messages")
    answer = d.get("answer") or {}
    if "boxes" in answer:
        if "image_size" not in answer:
            raise ValueError(f"record {rid}: answer.boxes needs answer.image_size [width, height] (boxes are pixels)")
        for b in answer["boxes"]:
            if not (isinstance(b, dict) and isinstance(b.get("bbox"), list) and len(b["bbox"]) == 4):
                raise ValueError(f"record {rid}: each answer.boxes item must be {{'bbox': [x1, y1, x2, y2], 'label': ...}}")


def resolve_image(path: str, base: str | Path | None) -> Path:
    """An image path from a record, relative paths taken against `base` (the record file's folder)."""
    p = Path(path)
    return p if p.is_absolute() or base is None else Path(base) / p


def write_jsonl(records: Iterable[Record | dict], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r.to_dict() if isinstance(r, Record) else r, ensure_ascii=False) + "\n")
            n += 1
    return n


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield dicts line by line (memory flat); a malformed line raises naming file and line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such records file")
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg}); each line must be one record") from e


def read_records(path: str | Path) -> list[Record]:
    """Records from a .jsonl or .parquet file."""
    path = Path(path)
    if path.suffix == ".parquet":
        return [Record.from_dict(d) for d in iter_parquet(path)]
    return [Record.from_dict(d) for d in iter_jsonl(path)]


PARQUET_LAYOUTS = ("native", "json")
COLUMNS = ("id", "source", "split", "task", "modality", "images", "messages", "answer", "meta")
_NESTED = ("images", "messages", "answer", "meta")
_TEXT_KEYS = ("text", "letter", "findings", "impression")


def parquet_schema(layout: str = "native"):
    """The one Arrow schema of a record shard in `layout` (see the module doc)."""
    import pyarrow as pa

    if layout not in PARQUET_LAYOUTS:
        raise ValueError(f"parquet layout {layout!r} is not one of {', '.join(PARQUET_LAYOUTS)}")
    if layout == "json":
        return pa.schema([(c, pa.string()) for c in COLUMNS])
    answer = pa.struct([("text", pa.string()), ("closed", pa.bool_()),
                        ("choices", pa.list_(pa.struct([("letter", pa.string()), ("text", pa.string())]))),
                        ("letter", pa.string()), ("findings", pa.string()), ("impression", pa.string()),
                        ("boxes", pa.list_(pa.struct([("bbox", pa.list_(pa.float64())), ("label", pa.string())]))),
                        ("image_size", pa.list_(pa.int64())), ("extra", pa.string())])
    nested = {"images": pa.list_(pa.string()), "answer": answer, "meta": pa.string(),
              "messages": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))}
    return pa.schema([(c, nested.get(c, pa.string())) for c in COLUMNS])


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _typed(key: str, v) -> bool:
    """Whether answer[key] = v fits its typed field of the native layout (else it goes to `extra`)."""
    if key in _TEXT_KEYS:
        return isinstance(v, str)
    if key == "closed":
        return isinstance(v, bool)
    if key == "choices":
        return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, str) for k, t in v.items())
    if key == "image_size":
        return isinstance(v, list) and all(_is_int(x) for x in v)
    if key == "boxes":
        return isinstance(v, list) and all(
            isinstance(b, dict) and set(b) <= {"bbox", "label"} and isinstance(b.get("bbox"), list)
            and all(_is_int(x) or isinstance(x, float) for x in b["bbox"]) and isinstance(b.get("label", ""), str)
            for b in v)
    return False


def _answer_struct(answer: dict | None) -> dict:
    out: dict[str, Any] = {}
    extra = {}
    for k, v in (answer or {}).items():
        if not _typed(k, v):
            extra[k] = v
        elif k == "choices":
            out[k] = [{"letter": letter, "text": text} for letter, text in v.items()]
        else:
            out[k] = v
    out["extra"] = json.dumps(extra, ensure_ascii=False) if extra else None
    return out


def _answer_dict(struct: dict) -> dict:
    out: dict[str, Any] = {}
    for k, v in struct.items():
        if v is None or k == "extra":
            continue
        if k == "choices":
            v = {c["letter"]: c["text"] for c in v}
        elif k == "boxes":
            v = [{"bbox": b["bbox"], **({"label": b["label"]} if b.get("label") is not None else {})} for b in v]
        out[k] = v
    if struct.get("extra"):
        out.update(json.loads(struct["extra"]))
    return out


def to_row(record: dict[str, Any], layout: str = "native") -> dict[str, Any]:
    """A record dict as one row of `parquet_schema(layout)`."""
    if layout == "json":
        return {c: json.dumps(record.get(c), ensure_ascii=False) if c in _NESTED else record.get(c) for c in COLUMNS}
    row = {c: record.get(c) for c in COLUMNS}
    messages = record.get("messages") or []
    if any(not isinstance(m, dict) or set(m) - {"role", "content"} for m in messages):
        raise ValueError(f"record {record.get('id', '<no id>')}: a message with keys other than role and content "
                         "does not fit the native Parquet layout; write it with layout='json' or as JSONL")
    row["images"] = list(record.get("images") or [])
    row["answer"] = _answer_struct(record.get("answer"))
    row["meta"] = json.dumps(record.get("meta"), ensure_ascii=False)
    return row


def from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of either layout back to the record dict (JSON strings decoded, the answer struct unfolded)."""
    for k in _NESTED:
        v = row.get(k)
        if isinstance(v, str):
            row[k] = json.loads(v)
        elif k == "answer" and isinstance(v, dict):
            row[k] = _answer_dict(v)
    return row


def parquet_table(records: Iterable[dict[str, Any]], layout: str = "native"):
    import pyarrow as pa

    schema = parquet_schema(layout)
    return pa.Table.from_pylist([to_row(r, layout) for r in records], schema=schema)


def write_parquet(records: Iterable[Record | dict], path: str | Path, layout: str = "native") -> int:
    """Records as one Parquet file in `layout` (module doc); returns how many."""
    import pyarrow.parquet as pq

    table = parquet_table((r.to_dict() if isinstance(r, Record) else r for r in records), layout)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(path))
    return table.num_rows


def iter_parquet(path: str | Path, batch_size: int = 65536) -> Iterator[dict[str, Any]]:
    """Record dicts from a Parquet shard of either layout, in row batches."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(str(path)).iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield from_row(row)
