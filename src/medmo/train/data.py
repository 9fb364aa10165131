"""Training sets as memory-mapped Arrow files, streamed from unified-record shards.

    ds, skipped = build_dataset(["runs/mix/stage1"], sft_row, run_dir / "dataset", json_columns=("messages",))

MedMO's stage 1 is 18.5M samples: a list of Python dicts of that size does not fit in a
node's memory, and `Dataset.from_list` would copy it into Arrow once more. Here records
are read one at a time (medmo.data.shards: JSONL line by line, Parquet in row batches),
each becomes a training row or a skip reason, and rows go straight to an Arrow file in the
run folder. The trainer reads that file memory-mapped, so resident memory does not grow
with the number of records (bench/train_data.py measures it).

- **One schema for every source.** Nested fields (`json_columns`: messages, prompts,
  image sizes) are stored as JSON text and decoded when a row is read, so records whose
  nested fields differ in shape share one Arrow schema; `images` is a list of paths.
- **Skips are counted, not fatal.** A record that fails validation, has no image file or
  lacks what the stage needs is counted by reason (the first few are logged with their
  ids); only a set with no usable row at all is an error.
- **Built once per input.** `meta.json` keeps a key of the record files' paths, sizes and
  modification times, `max_samples` and the row builder; a resumed run, and every rank
  after the first (the caller wraps the build in `main_process_first`), reuse the file
  and its skip counts instead of reading the records again. Both files are written under
  a per-process name and moved into place, so nodes without a shared run folder, each
  building its own copy, never read a half-written one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Callable

from medmo.data.schema import Record, resolve_image, validate_record
from medmo.data.shards import iter_shard, shard_files

logger = logging.getLogger(__name__)

# row builder: (Record, the folder its image paths are relative to) -> a row, or why it is skipped
RowFn = Callable[[Record, Path], "dict | str"]
_LOGGED_SKIPS = 5


def image_paths(rec: Record, base: Path) -> list[str] | str:
    """The record's images as resolved paths, or the skip reason "missing image"."""
    paths = [str(resolve_image(i, base)) for i in rec.images]
    return paths if all(os.path.exists(p) for p in paths) else "missing image"


def _files(paths: list[str]) -> list[Path]:
    return [f for p in paths for f in shard_files(p)]


def _key(files: list[Path], row_fn: RowFn, max_samples: int | None) -> str:
    sig = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha256(json.dumps([row_fn.__qualname__, sig, max_samples]).encode()).hexdigest()


def _features(row: dict):
    from datasets import Features, Sequence, Value

    return Features({k: Sequence(Value("string")) if isinstance(v, list) else Value("string")
                     for k, v in row.items()})


def _write(files: list[Path], row_fn: RowFn, path: Path, max_samples: int | None,
           json_columns: tuple[str, ...]) -> tuple[int, Counter]:
    """Stream records -> rows -> Arrow at `path`; returns (rows written, skips by reason)."""
    from datasets.arrow_writer import ArrowWriter
    from tqdm.auto import tqdm

    skipped: Counter = Counter()
    writer, n = None, 0
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # builders on several nodes never share a file
    with tqdm(desc="training set", unit="rec", mininterval=2) as bar:
        for f in files:
            for d in iter_shard(f):
                bar.update()
                try:
                    validate_record(d)
                    row = row_fn(Record.from_dict(d), f.parent)
                except (TypeError, ValueError) as e:  # fails validation: the message names id and field
                    row, why = "invalid record", str(e)
                else:
                    why = row
                if isinstance(row, str):
                    skipped[row] += 1
                    if sum(skipped.values()) <= _LOGGED_SKIPS:
                        logger.warning("skipping record %s of %s: %s", d.get("id", "?"), f.name, why)
                    continue
                row = {k: json.dumps(v, ensure_ascii=False) if k in json_columns else v for k, v in row.items()}
                if writer is None:
                    writer = ArrowWriter(features=_features(row), path=str(tmp))
                writer.write(row)
                n += 1
                if max_samples is not None and n >= max_samples:
                    break
            if max_samples is not None and n >= max_samples:
                break
    if writer is not None:
        writer.finalize()
        writer.close()
        os.replace(tmp, path)
    return n, skipped


def decoder(json_columns: tuple[str, ...]) -> Callable[[dict], dict]:
    """The dataset transform that turns the JSON-text columns of a batch back into objects."""
    def decode(batch: dict) -> dict:
        for k in json_columns:
            if k in batch:
                batch[k] = [json.loads(v) for v in batch[k]]
        return batch
    return decode


def build_dataset(paths: list[str], row_fn: RowFn, folder: str | Path, max_samples: int | None = None,
                  json_columns: tuple[str, ...] = ()):
    """(memory-mapped `datasets.Dataset` of rows, skip counts by reason); JSON columns decode on access.

    `paths` are record files or folders of shards. Raises if no record gives a row.
    """
    from datasets import Dataset

    files = _files(paths)
    folder = Path(folder)
    arrow, meta_file = folder / "data.arrow", folder / "meta.json"
    key = _key(files, row_fn, max_samples)
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    if meta.get("key") == key and (arrow.exists() or meta["rows"] == 0):
        n, skipped = meta["rows"], Counter(meta["skipped"])
    else:
        folder.mkdir(parents=True, exist_ok=True)
        n, skipped = _write(files, row_fn, arrow, max_samples, json_columns)
        tmp = meta_file.with_name(f"meta.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "rows": n, "skipped": dict(skipped), "files": [str(f) for f in files]},
                                  indent=2))
        os.replace(tmp, meta_file)
    if skipped:
        logger.warning("skipped records: %s", dict(skipped))
    if not n:
        raise ValueError(f"no usable records in {paths} (skipped: {dict(skipped) or 'none: the files are empty'})")
    logger.info("training set: %d rows (%s)", n, arrow)
    return Dataset.from_file(str(arrow)).with_transform(decoder(json_columns)), skipped
