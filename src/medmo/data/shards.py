"""Sharded record folders: a streaming writer and readers, shared by convert, mix and overlap.

A record folder holds `<prefix>-00000.jsonl` (or `.parquet`) shards of at most
`shard_size` records each. `ShardWriter` keeps at most one shard in memory (Parquet) or
none (JSONL), writes into a hidden staging folder and moves everything into place only
when the run finishes, so an interrupted or failed run never leaves a half-written
folder and never destroys the previous output. Shards from an earlier run with the same
prefix that this run did not produce are removed, so a re-run with fewer records gives
exactly the new output (idempotent, byte for byte).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from medmo.data.schema import iter_jsonl, iter_parquet, write_parquet

FORMATS = ("jsonl", "parquet")


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
            self._flush()
            self.files.append(f"{self.prefix}-{len(self.files):05d}.{self.fmt}")
            if self.fmt == "jsonl":
                self._fh = (self.stage / self.files[-1]).open("w", encoding="utf-8")
        if self.fmt == "jsonl":
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            self._rows.append(record)
        self.count += 1

    def _flush(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._rows:
            write_parquet(self._rows, self.stage / self.files[-1])
            self._rows = []

    def __exit__(self, exc_type, exc, tb) -> None:
        self._flush()
        if exc_type is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            return
        new = set(self.files)
        for old in self.out.glob(f"{self.prefix}-*.*"):
            if old.suffix.lstrip(".") in FORMATS and old.name not in new:
                old.unlink()
        for name in self.files:
            os.replace(self.stage / name, self.out / name)
        shutil.rmtree(self.stage, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> Path:
    """Deterministic JSON (sorted keys, fixed indent), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def shard_files(path: str | Path) -> list[Path]:
    """The record files of a folder (sorted), or the file itself."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; expected a folder of .jsonl/.parquet record shards "
                                "(the output of `medmo data convert` or `medmo data mix`)")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".jsonl", ".parquet"))
    if not files:
        raise ValueError(f"{path} holds no .jsonl or .parquet record shards; run `medmo data convert` first")
    return files


def iter_shard(path: Path) -> Iterator[dict[str, Any]]:
    return iter_parquet(path) if path.suffix == ".parquet" else iter_jsonl(path)


def iter_records(path: str | Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """(record dict, the folder its relative image paths are relative to), streaming."""
    for f in shard_files(path):
        for d in iter_shard(f):
            yield d, f.parent
