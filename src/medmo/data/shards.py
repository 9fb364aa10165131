"""Sharded record folders: a streaming writer and readers, shared by convert, mix and overlap.

A record folder holds `<prefix>-00000.jsonl` (or `.parquet`) shards of at most
`shard_size` records each. `ShardWriter` streams: JSONL line by line, Parquet one row
group of `ROW_GROUP` records at a time, so memory does not depend on the shard size.
Parquet is written in medmo.data.schema's "native" layout (nested columns any HF tool
reads as records) unless `layout="json"` asks for the older all-JSON-strings one; the
readers here take both. It writes into a hidden staging folder and moves everything into place only
when the run finishes, so an interrupted or failed run never leaves a half-written
folder and never destroys the previous output. Shards from an earlier run with the same
prefix that this run did not produce are removed, so a re-run with fewer records gives
exactly the new output (idempotent, byte for byte).

`replace_folder` makes a whole output folder atomic: a run builds its new version in a
sibling `.<name>.new-<pid>` folder (starting from hard links to the old entries it does
not rewrite, so other splits and stored images carry over for free) and swaps it in by
renaming: the old folder moves aside to `.<name>.old-<pid>`, the new one takes its name,
then the old one is deleted. A kill at any moment leaves either the old folder or the new
one complete; a kill between the two renames leaves the old one aside, and the next run
(or reader through `recover_folder`) renames it back. Runs writing the same folder (two
splits converted at once) take turns on a lock file `.<name>.lock`, so neither loses the
other's output.

`heal_jsonl` cuts an append-only JSONL log (eval samples, training log) back to its last
complete line, so a line torn by a kill never merges with the next record.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from medmo.data.schema import PARQUET_LAYOUTS, iter_jsonl, iter_parquet, parquet_schema, to_row

FORMATS = ("jsonl", "parquet")
ROW_GROUP = 4096
log = logging.getLogger(__name__)


class ShardWriter:
    """with ShardWriter(out, "vqa_rad", "jsonl", 50_000) as w: w.write(record_dict)

    layout: Parquet's "native" (nested columns; the default) or "json" (medmo.data.schema)."""

    def __init__(self, out_dir: str | Path, prefix: str, fmt: str = "jsonl", shard_size: int = 50_000,
                 layout: str = "native"):
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        if layout not in PARQUET_LAYOUTS:
            raise ValueError(f"parquet layout {layout!r} is not one of {', '.join(PARQUET_LAYOUTS)}")
        self.out, self.prefix, self.fmt, self.shard_size = Path(out_dir), prefix, fmt, shard_size
        self.layout = layout
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
        """Raises UnicodeEncodeError (nothing written) when a string is not valid UTF-8, and
        ValueError when a record does not fit the native layout (schema.to_row says why)."""
        line = json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"
        row = to_row(record, self.layout) if self.fmt == "parquet" else None  # before anything is written
        if self.count % self.shard_size == 0:
            self._close_shard()
            self.files.append(f"{self.prefix}-{len(self.files):05d}.{self.fmt}")
            if self.fmt == "jsonl":
                self._fh = (self.stage / self.files[-1]).open("wb")
        if self.fmt == "jsonl":
            self._fh.write(line)
        else:
            self._rows.append(row)
            if len(self._rows) >= ROW_GROUP:
                self._write_row_group()
        self.count += 1

    def _write_row_group(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(self._rows, schema=parquet_schema(self.layout))
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


def _siblings(out: Path, kind: str) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.{kind}-*"))


def recover_folder(out: str | Path) -> Path:
    """Undo a swap cut short by a kill: when `out` is gone but its old version waits aside,
    rename it back. Returns `out`."""
    out = Path(out)
    if not out.exists():
        old = _siblings(out, "old")
        if old:
            os.rename(old[-1], out)
            log.warning("%s: restored the previous output from %s (a run was killed while swapping it in)",
                        out, old[-1].name)
    return out


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


@contextmanager
def replace_folder(out: str | Path, carry: Callable[[str], bool]) -> Iterator[Path]:
    """`with replace_folder(out, carry) as new:` write the new output into `new`; on success it
    replaces `out` (see the module doc), on an exception it is deleted and `out` is untouched.

    `carry(name)` says which top-level entries of the old `out` the new one starts with (as
    hard links: never write into a carried file in place, replace it)."""
    out = Path(os.path.abspath(out))  # absolute: "." or "data/x" must name a folder with a parent
    out.parent.mkdir(parents=True, exist_ok=True)
    with (out.parent / f".{out.name}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s: another run is writing this folder; waiting for it to finish", out)
            fcntl.flock(lock, fcntl.LOCK_EX)
        with _replace_locked(recover_folder(out), carry) as new:
            yield new


@contextmanager
def _replace_locked(out: Path, carry: Callable[[str], bool]) -> Iterator[Path]:
    """replace_folder's work, under its lock."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; the output must be a folder (new or one this command wrote)")
    for stale in _siblings(out, "new") + _siblings(out, "old"):
        shutil.rmtree(stale, ignore_errors=True)  # left by killed runs (recover_folder restored one left aside)
    new = out.parent / f".{out.name}.new-{os.getpid()}"
    new.mkdir()
    try:
        if out.is_dir():
            for entry in out.iterdir():
                if not carry(entry.name):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, new / entry.name, symlinks=True, copy_function=_link_or_copy)
                elif entry.is_symlink():
                    os.symlink(os.readlink(entry), new / entry.name)
                else:
                    _link_or_copy(str(entry), str(new / entry.name))
        yield new
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(new, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, out)


def rebase(path: str, new: Path, out: Path) -> str:
    """A path inside the folder being built (`new`) as it will be named once swapped in (`out`)."""
    prefix = str(new) + os.sep
    return str(out) + os.sep + path[len(prefix):] if path.startswith(prefix) else path


def heal_jsonl(path: str | Path) -> int:
    """Cut an append-only JSONL file back to its last complete line (ending in a newline) and
    return how many bytes were dropped (0 when it was whole or is absent). A run killed while
    appending leaves a torn last line; cutting it off before appending again means the next
    record never merges with it."""
    path = Path(path)
    if not path.is_file():
        return 0
    with path.open("rb+") as f:
        size = f.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            step = min(65536, end)
            f.seek(end - step)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                end = end - step + nl + 1
                break
            end -= step
        if end < size:
            f.truncate(end)
    if end < size:
        log.warning("%s: dropped a torn last line (%d bytes) left by an interrupted write", path, size - end)
    return size - end


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
    path = recover_folder(path)
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
    """A shard's records, streaming (Parquet of either layout in batches of 1,024 rows: a
    mixture keeps one reader open per source, so large default batches would multiply)."""
    if path.suffix != ".parquet":
        yield from iter_jsonl(path)
        return
    yield from iter_parquet(path, batch_size=1024)


def iter_records(path: str | Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """(record dict, the folder its relative image paths are relative to), streaming."""
    for f in shard_files(path):
        for d in iter_shard(f):
            yield d, f.parent
