"""Training sets as memory-mapped Arrow files, streamed from unified-record shards.

    ds, skipped = build_dataset(["runs/mix/stage1"], sft_row, run_dir / "dataset", json_columns=("messages",),
                                num_proc=16)

MedMO's stage 1 is 18.5M samples: a list of Python dicts of that size does not fit in a
node's memory, and `Dataset.from_list` would copy it into Arrow once more. Here records
are read one at a time (medmo.data.shards: JSONL line by line, Parquet of either layout,
native or JSON strings, in row batches), each becomes a training row or a skip reason, and
rows go straight to Arrow files in the run folder (`num_proc` processes, one part per
record file). The trainer reads them memory-mapped, so resident memory does not grow with
the number of records (bench/train_data.py measures it).

- **One schema for every source.** Nested fields (`json_columns`: messages, prompts,
  image sizes) are stored as JSON text and decoded when a row is read, so records whose
  nested fields differ in shape share one Arrow schema; `images` is a list of paths.
- **Skips are counted, not fatal.** A record that fails validation, has no image file or
  lacks what the stage needs is counted by reason (the first few are logged with their
  ids); only a set with no usable row at all is an error.
- **Built once per input.** `meta.json` keeps a key of the record files' paths, sizes and
  modification times, `max_samples` and the row builder; a resumed run, and every rank
  after the first (the caller wraps the build in `main_process_first`), reuse the parts
  and their skip counts instead of reading the records again. Every file is written
  under a per-process name and moved into place, so nodes without a shared run folder,
  each building its own copy, never read a half-written one.
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
from medmo.data.shards import iter_shard, shard_files, write_json

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
    # a row builder whose columns changed carries a `version`, so sets built by the old one are rebuilt
    name = row_fn.__qualname__ + (f"@{row_fn.version}" if hasattr(row_fn, "version") else "")
    return hashlib.sha256(json.dumps([name, sig, max_samples]).encode()).hexdigest()


def _features(row: dict):
    from datasets import Features, Sequence, Value

    return Features({k: Sequence(Value("string")) if isinstance(v, list) else Value("string")
                     for k, v in row.items()})


def _write(files: list[Path], row_fn: RowFn, path: Path, max_samples: int | None, json_columns: tuple[str, ...],
           progress: bool = True) -> tuple[int, Counter, list[str]]:
    """Stream records -> rows -> Arrow at `path` (absent if no row); returns (rows written,
    skips by reason, the first few skips as "id of file: cause")."""
    from datasets.arrow_writer import ArrowWriter
    from tqdm.auto import tqdm

    skipped: Counter = Counter()
    examples: list[str] = []
    writer, n = None, 0
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # builders on several nodes never share a file
    with tqdm(desc="training set", unit="rec", mininterval=2, disable=not progress) as bar:
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
                    if len(examples) < _LOGGED_SKIPS:
                        examples.append(f"{d.get('id', '?')} of {f.name}: {why}")
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
    return n, skipped, examples


def _write_part(job: tuple) -> tuple[int, Counter, list[str]]:
    """One record file -> one Arrow part (a worker process of `build_dataset`)."""
    f, row_fn, path, json_columns = job
    return _write([f], row_fn, path, None, json_columns, progress=False)


def _build(files: list[Path], row_fn: RowFn, folder: Path, max_samples: int | None, json_columns: tuple[str, ...],
           num_proc: int) -> tuple[list[str], int, Counter, list[str]]:
    """Write the parts: one per record file in `num_proc` processes, or one in total (max_samples)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    if num_proc <= 1 or max_samples is not None or len(files) == 1:
        names = ["data-00000.arrow"]
        results = [_write(files, row_fn, folder / names[0], max_samples, json_columns)]
    else:
        names = [f"data-{k:05d}.arrow" for k in range(len(files))]
        jobs = [(f, row_fn, folder / name, json_columns) for f, name in zip(files, names)]
        with ProcessPoolExecutor(min(num_proc, len(jobs)), mp_context=get_context("fork")) as pool:
            results = list(tqdm(pool.map(_write_part, jobs), total=len(jobs), desc="training set", unit="file"))
    parts = [name for name, (n, _, _) in zip(names, results) if n]
    skipped = sum((r[1] for r in results), Counter())
    examples = [e for r in results for e in r[2]][:_LOGGED_SKIPS]
    return parts, sum(r[0] for r in results), skipped, examples


def decoder(json_columns: tuple[str, ...]) -> Callable[[dict], dict]:
    """The dataset transform that turns the JSON-text columns of a batch back into objects."""
    def decode(batch: dict) -> dict:
        for k in json_columns:
            if k in batch:
                batch[k] = [json.loads(v) for v in batch[k]]
        return batch
    return decode


def build_dataset(paths: list[str], row_fn: RowFn, folder: str | Path, max_samples: int | None = None,
                  json_columns: tuple[str, ...] = (), num_proc: int = 1):
    """(memory-mapped `datasets.Dataset` of rows, skip counts by reason); JSON columns decode on access.

    `paths` are record files or folders of shards. With `num_proc` > 1 (and no
    `max_samples`) each record file is converted by one of that many processes into its own
    Arrow part; the parts are read as one dataset, in file order. Raises if no record gives a row.
    """
    from datasets import Dataset, concatenate_datasets

    files = _files(paths)
    folder = Path(folder)
    meta_file = folder / "meta.json"
    key = _key(files, row_fn, max_samples)
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    if meta.get("key") == key and all((folder / p).exists() for p in meta["parts"]):
        parts, n, skipped = meta["parts"], meta["rows"], Counter(meta["skipped"])
    else:
        if meta:
            logger.warning("the record files or max_samples changed since %s was built: rebuilding it; a run "
                           "resumed from a checkpoint keeps its step count but now reads different data", folder)
        folder.mkdir(parents=True, exist_ok=True)
        parts, n, skipped, examples = _build(files, row_fn, folder, max_samples, json_columns, num_proc)
        for line in examples:
            logger.warning("skipped record %s", line)
        write_json(meta_file, {"key": key, "rows": n, "skipped": dict(skipped), "parts": parts,
                               "files": [str(f) for f in files]})
        for old in folder.glob("data-*.arrow"):  # parts of an earlier build that this one did not write
            if old.name not in parts:
                old.unlink()
    if skipped:
        logger.warning("skipped records: %s", dict(skipped))
    if not n:
        raise ValueError(f"no usable records in {paths} (skipped: {dict(skipped) or 'none: the files are empty'})")
    logger.info("training set: %d rows in %d Arrow part(s) under %s", n, len(parts), folder)
    dataset = concatenate_datasets([Dataset.from_file(str(folder / p)) for p in parts])
    return dataset.with_transform(decoder(json_columns)), skipped
