"""`medmo data convert SOURCE --raw PATH --out DIR`: a public release -> sharded unified records.

    medmo data convert vqa_rad --raw ~/data/vqa_rad --out data/vqa_rad
    medmo data convert nih_chestxray14 --raw ~/data/nih --out data/nih --format parquet --check-images decode

Streams the registered converter (medmo.data.sources) into `<source>-NNNNN.jsonl|parquet`
shards (`<source>-<split>-NNNNN` with `--split`, so the splits of one release can share a
folder) and writes `report.json` (`report-<split>.json`): records kept (by split and
task) and dropped by reason
(the converter's Drops plus, when asked, missing or undecodable images). Memory stays
flat in the number of records: nothing is collected, one shard at most is buffered.

Output is deterministic: the same release gives the same bytes (no timestamps in the
report; `config.yaml` holds the resolved config). Image paths are written absolute, as
found from `--raw`, so the records work from any folder; moving the release means
converting again. Releases that embed their images (Hugging Face parquet copies) have
them written once, content-addressed, under OUT/images (or `--image-dir`). A wrong `--raw` path or format fails at once with the converter's own
description of what it expected, and so does a conversion in which every item was
dropped (report.json is still written, to show why; a previous output in OUT is kept).

No row can stop a conversion: every row-level failure (a row that is not an object, a
field of the wrong type, bad UTF-8, a missing field, a NUL byte in a path, an undecodable
image) is dropped and counted by reason with the row's position (medmo.data.sources
`Drops.guard`), and the first examples of each reason are logged. Image paths that leave
the release folder (`../../etc/passwd`, absolute paths elsewhere, symlinks pointing out)
are refused as "image_outside_release" unless `--allow-outside-images`; the release
folder is `--raw` itself, or the folder holding it when `--raw` is a file.

The output is replaced atomically (medmo.data.shards.replace_folder): the new version is
built in a sibling folder and renamed into place, so a kill at any moment leaves the
previous output (shards and the report describing them) whole.
"""
from __future__ import annotations

import inspect
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from medmo.config import make_run_dir
from medmo.data.schema import PARQUET_LAYOUTS, Record, validate_record
from medmo.data.shards import FORMATS, ShardWriter, rebase, replace_folder, write_json
from medmo.data.sources import Drops, Source, get_source, printable

log = logging.getLogger(__name__)

CHECKS = ("none", "exists", "decode")
RECORD_FIELDS = tuple(Record.__dataclass_fields__)


@dataclass
class ConvertConfig:
    source: str = field(metadata={"help": "registered source name, e.g. vqa_rad (an unknown name lists them all)"})
    raw: str = field(metadata={"help": "the release as downloaded (folder or main file; see the source's doc)"})
    out: str = field(metadata={"help": "output folder for shards and report.json"})
    format: Literal["jsonl", "parquet"] = field(default="jsonl", metadata={
        "help": "shard format: jsonl (greppable) or parquet (compact, columnar)"})
    parquet_layout: Literal["native", "json"] = field(default="native", metadata={
        "help": "parquet only: native (nested columns: datasets.load_dataset('parquet', ...) gives records) or "
                "json (nested fields as JSON strings, medmo's layout before native; medmo reads both)"})
    shard_size: int = field(default=50_000, metadata={
        "help": "records per shard (~50k keeps JSONL shards in the tens of MB)"})
    split: str | None = field(default=None, metadata={
        "help": "only this split (default: every split the release has)"})
    check_images: Literal["none", "exists", "decode"] = field(default="none", metadata={
        "help": "drop records whose images are missing (exists) or also undecodable (decode)"})
    image_dir: str | None = field(default=None, metadata={
        "help": "where images embedded in the release (HF parquet) are written (default: OUT/images)"})
    allow_outside_images: bool = field(default=False, metadata={
        "help": "keep image paths outside the release folder (absolute, ../, symlinks out); default: drop them"})

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.check_images not in CHECKS:
            raise ValueError(f"check_images {self.check_images!r} is not one of {', '.join(CHECKS)}")
        if self.parquet_layout not in PARQUET_LAYOUTS:
            raise ValueError(f"parquet_layout {self.parquet_layout!r} is not one of {', '.join(PARQUET_LAYOUTS)}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")


def expected_input(src: Source) -> str:
    """The part of a converter's docstring that says what `raw` should be."""
    paras = [p.strip("\n").rstrip() for p in src.doc.split("\n\n") if p.strip()]
    about_raw = [p for p in paras if "raw" in p.lower() or "release" in p.lower()]
    return "\n\n".join(about_raw[:3] or paras[:2]) or f"(the {src.name} converter has no description)"


class ImageCheck:
    """Drop reasons for a record's images, with bounded caches: VQA sets ask many questions of one image.

    A path with a NUL byte is "bad_path"; one that resolves (symlinks followed) outside every
    folder of `roots` is "image_outside_release" (roots None: anywhere is fine); then, by
    `mode`, a missing file ("exists") or one medmo.imaging cannot open ("decode").
    """

    def __init__(self, mode: str, roots: tuple[str, ...] | None = None, cache_size: int = 8192):
        self.mode, self.roots = mode, roots
        self.reason = lru_cache(maxsize=cache_size)(self._check)  # path -> drop reason or None
        self._real_dir = lru_cache(maxsize=cache_size)(os.path.realpath)  # images share a few folders

    def _outside(self, path: str) -> bool:
        head, tail = os.path.split(path)
        real = os.path.join(self._real_dir(head), tail)
        if os.path.islink(real):
            real = os.path.realpath(real)
        return not any(real == r or real.startswith(r + os.sep) for r in self.roots)

    def _check(self, path: str) -> str | None:
        if "\x00" in path:
            return "bad_path"
        if self.roots is not None and self._outside(path):
            return "image_outside_release"
        if self.mode == "none":
            return None
        if not os.path.isfile(path):
            return "image_missing"
        if self.mode == "decode":
            from medmo.imaging import open_image

            try:
                open_image(path)
            except Exception:  # noqa: BLE001 - any decoder failure (zlib.error, MemoryError, ...) is one bad image
                return "image_unreadable"
        return None


def with_context(e: Exception, msg: str) -> Exception:
    """`e`'s type with `msg` (chained to `e` by the caller), or a ValueError when that type
    cannot be built from one message (UnicodeDecodeError takes five arguments)."""
    try:
        return type(e)(msg)
    except Exception:  # noqa: BLE001 - any constructor signature
        return ValueError(msg)


def run(cfg: ConvertConfig) -> Path:
    src = get_source(cfg.source)
    raw = Path(cfg.raw).expanduser()
    if not raw.exists():
        raise FileNotFoundError(f"--raw {raw} does not exist. {cfg.source} expects:\n{expected_input(src)}")
    out = Path(os.path.abspath(cfg.out))  # records name their images under it: absolute, like every image path
    report_name = f"report-{cfg.split}.json" if cfg.split else "report.json"
    prefix = f"{cfg.source}-{cfg.split}" if cfg.split else cfg.source
    ours = re.compile(rf"{re.escape(prefix)}-\d{{5}}\.(jsonl|parquet)|{re.escape(Path(report_name).stem)}(\.failed)?\.json"
                      r"|config\.yaml|\.staging-.*")
    with replace_folder(out, carry=lambda name: not ours.fullmatch(name)) as new:
        make_run_dir(new, cfg)
        writer, drops, by_split, by_task = _convert(cfg, src, raw, new, out, prefix)
        report = {
            "source": cfg.source, "raw": str(raw), "split": cfg.split, "format": cfg.format,
            "check_images": cfg.check_images, "allow_outside_images": cfg.allow_outside_images,
            "kept": writer.count, "kept_by_split": dict(by_split), "kept_by_task": dict(by_task),
            "dropped": drops.to_dict(), "shards": writer.files,
        }
        write_json(new / report_name, report)
        failed = writer.count == 0 and drops.total
        if failed and out.exists():  # keep the previous output; the report of this run goes beside it
            write_json(out / f"{Path(report_name).stem}.failed.json", report)
            raise _all_dropped(cfg, src, raw, drops, out / f"{Path(report_name).stem}.failed.json")
    if failed:
        raise _all_dropped(cfg, src, raw, drops, out / report_name)
    if writer.count == 0:
        log.warning("%s: %s holds no records%s", cfg.source, raw, f" for split {cfg.split!r}" if cfg.split else "")
    for reason, examples in drops.examples.items():
        log.info("%s: dropped %d %s, e.g. %s", cfg.source, drops.counts[reason], reason, "; ".join(examples[:3]))
    log.info("%s: kept %d, dropped %d %s -> %s", cfg.source, writer.count, drops.total, dict(drops.counts), out)
    return out


def _all_dropped(cfg: ConvertConfig, src: Source, raw: Path, drops: Drops, report_path: Path) -> ValueError:
    reasons = ", ".join(f"{k}: {v}" for k, v in drops.counts.most_common())
    example = next((ex[0] for ex in drops.examples.values() if ex), "")
    return ValueError(f"{cfg.source}: no record converted from {raw}: all {drops.total} items dropped ({reasons}"
                      f"{'; e.g. ' + example if example else ''}); see {report_path}. Is --raw the {cfg.source} release? "
                      f"It expects:\n{expected_input(src)}")


def _convert(cfg: ConvertConfig, src: Source, raw: Path, new: Path, out: Path, prefix: str):
    """Stream the converter into shards in `new` (the folder that becomes `out`)."""
    drops = Drops()
    by_split: Counter = Counter()
    by_task: Counter = Counter()
    images = Path(cfg.image_dir) if cfg.image_dir else new / "images"
    roots = None if cfg.allow_outside_images else tuple(
        os.path.realpath(p) for p in (raw if raw.is_dir() else raw.parent, images))
    check = ImageCheck(cfg.check_images, roots)
    try:
        kwargs = {"split": cfg.split}
        if "image_dir" in inspect.signature(src.convert).parameters:
            kwargs["image_dir"] = images
        records = src.convert(raw, drops, **kwargs)
        with ShardWriter(new, prefix, cfg.format, cfg.shard_size, layout=cfg.parquet_layout) as writer:
            for rec in tqdm(records, desc=f"convert {cfg.source}", unit="rec", mininterval=2):
                if isinstance(rec, Record):  # validated when built; a shallow dict skips a 2nd deep asdict
                    d = {name: getattr(rec, name) for name in RECORD_FIELDS}
                else:
                    d = dict(rec)
                    validate_record(d)
                d["images"] = [os.path.abspath(p) for p in d.get("images") or []]
                bad = next(((r, p) for p in d["images"] if (r := check.reason(p))), None)
                if bad:
                    drops.add(bad[0], f"{d['id']}: {bad[1]}")
                    continue
                d["images"] = [rebase(p, new, out) for p in d["images"]]
                try:
                    writer.write(d)
                except UnicodeEncodeError as e:  # a lone surrogate (bad bytes or a "\\ud800" escape) in a field
                    drops.add("bad_encoding", f"{printable(str(d['id']))}: {e.reason} at {e.start}")
                    continue
                by_split[d["split"]] += 1
                by_task[d["task"]] += 1
    except (FileNotFoundError, ValueError) as e:
        raise with_context(e, f"{cfg.source}: {e}\n\n{cfg.source} expects:\n{expected_input(src)}") from e
    return writer, drops, by_split, by_task
