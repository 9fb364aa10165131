"""The unified Record (DESIGN.md) and its JSONL / Parquet IO.

Every source and task becomes the same JSON object. Ground-truth boxes are PIXELS of
the original image, with `answer.image_size` giving that pixel space; grid coordinates
are never stored. `validate_record` names the record and the field that is wrong.
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


_JSON_COLUMNS = ("messages", "answer", "images", "meta")


def write_parquet(records: Iterable[Record | dict], path: str | Path) -> int:
    """Nested fields are stored as JSON strings so every source shares one Arrow schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [r.to_dict() if isinstance(r, Record) else dict(r) for r in records]
    for row in rows:
        for k in _JSON_COLUMNS:
            row[k] = json.dumps(row.get(k), ensure_ascii=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), str(path))
    return len(rows)


def iter_parquet(path: str | Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(path))
    for batch in pf.iter_batches():
        for row in batch.to_pylist():
            for k in _JSON_COLUMNS:
                if isinstance(row.get(k), str):
                    row[k] = json.loads(row[k])
            yield row
