"""Sharded record folders: a streaming writer and readers, shared by convert, mix and overlap.

A record folder holds `<prefix>-00000.jsonl` (or `.parquet`) shards of at most
`shard_size` records each. `ShardWriter` streams: JSONL line by line, Parquet one row
group of `ROW_GROUP` records at a time (nested fields as JSON strings, the layout
medmo.data.schema reads), so memory does not depend on the shard size. It writes into a hidden staging folder and moves everything into place only
when the run finishes, so an interrupted or failed run never leaves a half-written
folder and never destroys the previous output. Shards from an earlier run with the same
prefix that this run did not produce are removed, so a re-run with fewer records gives
exactly the new output (idempotent, byte for byte).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

from medmo.data.schema import iter_jsonl

FORMATS = ("jsonl", "parquet")
ROW_GROUP = 4096
_COLUMNS = ("id", "source", "split", "task", "modality", "images", "messages", "answer", "meta")
_JSON_COLUMNS = ("images", "messages", "answer", "meta")


class ShardWriter:
    """with ShardWriter(out, "vqa_rad", "jsonl", 50_000) as w: w.write(record_dict)"""

    def __init__(self, out_dir: str | Path, prefix: str, fmt: str = "jsonl", shard_size: int = 50_000):
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.out, self.prefix, self.fmt, self.shard_size = Path(out_dir), prefix, fmt, shard_size
        self.stage = self.out / f".staging-{prefix}"
        self.files: list[str] = []
        self.count = 0
        self._rows: list[dict] = []
        self._fh = None

    def __enter__(self) -> "ShardWriter":
        if self.stage.exists():
            shutil.rmtree(self.stage)
        self.stage.mkdir(parents=True)
        return self

    def write(self, record: dict[str, Any]) -> None:
        if self.count % self.shard_size == 0:
            self._close_shard()
            self.files.append(f"{self.prefix}-{len(self.files):05d}.{self.fmt}")
            if self.fmt == "jsonl":
                self._fh = (self.stage / self.files[-1]).open("w", encoding="utf-8")
        if self.fmt == "jsonl":
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            self._rows.append(record)
            if len(self._rows) >= ROW_GROUP:
                self._write_row_group()
        self.count += 1

    def _write_row_group(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {c: [(json.dumps(r.get(c), ensure_ascii=False) if c in _JSON_COLUMNS else r.get(c))
                       for r in self._rows] for c in _COLUMNS}
        table = pa.table(columns, schema=pa.schema([(c, pa.string()) for c in _COLUMNS]))
        if self._fh is None:
            self._fh = pq.ParquetWriter(str(self.stage / self.files[-1]), table.schema)
        self._fh.write_table(table)
        self._rows = []

    def _close_shard(self) -> None:
        if self._rows:
            self._write_row_group()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close_shard()
        if exc_type is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            return
        new = set(self.files)
        ours = re.compile(rf"{re.escape(self.prefix)}-\d{{5}}\.(jsonl|parquet)")
        for old in self.out.iterdir():
            if ours.fullmatch(old.name) and old.name not in new:
                old.unlink()
        for name in self.files:
            os.replace(self.stage / name, self.out / name)
        shutil.rmtree(self.stage, ignore_errors=True)


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Deterministic JSON (sorted keys, fixed indent; `indent=None` for large arrays), written
    atomically: under a per-process name, then moved, so concurrent writers (ranks or nodes
    building the same file) never leave or read half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def shard_files(path: str | Path) -> list[Path]:
    """The record files of a folder (sorted), or the file itself."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; expected a .jsonl/.parquet record file or a folder of "
                                "them (the output of `medmo data convert` or `medmo data mix`)")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".jsonl", ".parquet"))
    if not files:
        raise ValueError(f"{path} holds no .jsonl or .parquet record shards; run `medmo data convert` first")
    return files


def iter_shard(path: Path) -> Iterator[dict[str, Any]]:
    """A shard's records, streaming (Parquet in batches of 1,024 rows: a mixture keeps one
    reader open per source, so large default batches would multiply)."""
    if path.suffix != ".parquet":
        yield from iter_jsonl(path)
        return
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(str(path)).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            for k in _JSON_COLUMNS:
                if isinstance(row.get(k), str):
                    row[k] = json.loads(row[k])
            yield row


def iter_records(path: str | Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """(record dict, the folder its relative image paths are relative to), streaming."""
    for f in shard_files(path):
        for d in iter_shard(f):
            yield d, f.parent
