"""`medmo data mix RECIPE.yaml`: a training stage's data set from weighted record folders.

    medmo data mix recipes/data/stage1_mix.yaml
    medmo data mix recipes/data/stage2_mix.yaml total=100000 seed=1 out=runs/mix_s2_small

Each source is a folder written by `medmo data convert`. With `total` set, weights are
proportions of the output (largest-remainder rounding, so counts sum to `total`);
without it, a weight is a repeat factor (1 = every record once, 0.5 = a random half,
3 = three passes). A source smaller than its share is repeated (repeats get `#rN` id
suffixes so ids stay unique); a larger one is subsampled without replacement
(selection sampling, exact counts, one pass).

Streaming, so memory is flat in the number of records: sources are first counted
(line counts / Parquet metadata), then read lazily and merged at random with each
source's chance proportional to what it has left (a uniformly random interleaving in
which every source runs out together), then passed through a shuffle buffer of
`shuffle_buffer` records. This departs from a global shuffle: records from one shard
stay within ~`shuffle_buffer` positions of each other's file order (the webdataset /
`IterableDataset.shuffle` trade-off); shard order is reshuffled on every pass.

The stage's resolution budget (768*768 for stage 1, 1280*1280 for stage 2, as in the
paper) is written into every record's meta (`max_pixels`, `min_pixels`) for the
trainer's processor; with `resize_images: true` the images are also re-encoded to fit
the budget (PNG, content-addressed under out/images/, each once) and grounding boxes
are rescaled with them. Relative image paths become absolute. Everything is seeded:
the same recipe gives the same bytes. The output folder is replaced atomically
(medmo.data.shards.replace_folder): a kill leaves the previous mixture whole; resized
images already stored carry over and are not re-encoded.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Literal

from tqdm import tqdm

from medmo.config import make_run_dir
from medmo.data.schema import resolve_image
from medmo.data.shards import FORMATS, ShardWriter, iter_shard, rebase, replace_folder, shard_files, write_json
from medmo.data.sources import Drops

log = logging.getLogger(__name__)


DERIVED = (None, "retrieval")  # record sets built from a converted source (medmo.data.retrieval)


@dataclass
class MixSource:
    name: str                 # label in reports (usually the converter's source name)
    path: str                 # folder of record shards written by `medmo data convert`
    weight: float = 1.0       # proportion of `total`, or a repeat factor when total is unset
    source: str | None = None  # the converter that writes `path` (`medmo data convert SOURCE`); None: `name`
    derive: str | None = None  # "retrieval": `path` is `medmo data retrieval` output of the converted source

    def __post_init__(self):
        if not self.weight >= 0:
            raise ValueError(f"source {self.name!r}: weight must be >= 0, got {self.weight}")
        if self.derive not in DERIVED:
            raise ValueError(f"source {self.name!r}: derive must be one of {DERIVED}, got {self.derive!r}")

    @property
    def converter(self) -> str:
        return self.source or self.name


@dataclass
class MixtureConfig:
    out: str = field(metadata={"help": "output folder: shards, mixture.json, config.yaml"})
    sources: list[MixSource] = field(default_factory=list, metadata={
        "help": "[{name, path, weight}, ...] (in the recipe)"})
    name: str = field(default="mix", metadata={"help": "the stage this set is for, written to meta.mixture"})
    total: int | None = field(default=None, metadata={"help": "output records (default: sum of count x weight)"})
    max_pixels: int = field(default=768 * 768, metadata={
        "help": "stage resolution budget (stage 1: 768^2, stage 2: 1280^2)"})
    min_pixels: int | None = field(default=None, metadata={
        "help": "optional lower bound (small images are upscaled)"})
    resize_images: bool = field(default=False, metadata={"help": "re-encode images to the budget (else meta only)"})
    seed: int = field(default=0, metadata={"help": "one seed for selection, merging and shuffling"})
    shuffle_buffer: int = field(default=10_000, metadata={"help": "records held for shuffling (memory bound)"})
    shard_size: int = field(default=50_000, metadata={"help": "records per output shard"})
    format: Literal["jsonl", "parquet"] = field(default="jsonl", metadata={"help": "shard format"})

    def __post_init__(self):
        keys = tuple(MixSource.__dataclass_fields__)
        parsed = []
        for i, s in enumerate(self.sources):
            if isinstance(s, dict):
                unknown = sorted(set(s) - set(keys))
                if unknown or "path" not in s or "name" not in s:
                    raise ValueError(f"sources[{i}] must be a mapping with keys {keys} (name and path required), "
                                     f"got {sorted(s)}")
                s = MixSource(**s)
            parsed.append(s)
        self.sources = parsed
        if not self.sources:
            raise ValueError("a mixture needs at least one source: sources: [{name, path, weight}]")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        if self.total is not None and self.total < 1:
            raise ValueError(f"total must be >= 1 or null, got {self.total}")
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.shuffle_buffer < 1 or self.shard_size < 1:
            raise ValueError("shuffle_buffer and shard_size must be >= 1")


def count_records(path: str | Path) -> int:
    """Records in a folder without parsing them (JSONL lines, Parquet metadata)."""
    import pyarrow.parquet as pq

    n = 0
    for f in shard_files(path):
        if f.suffix == ".parquet":
            n += pq.ParquetFile(str(f)).metadata.num_rows
        else:
            with f.open("rb") as fh:
                n += sum(1 for line in fh if line.strip())
    return n


def allocate(counts: list[int], weights: list[float], total: int | None) -> list[int]:
    """Records to take from each source (see the module doc for the two meanings of weight)."""
    if total is None:
        return [round(c * w) for c, w in zip(counts, weights)]
    wsum = sum(weights)
    if wsum <= 0:
        raise ValueError("at least one source needs a positive weight")
    exact = [total * w / wsum for w in weights]
    out = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in by_remainder[: total - sum(out)]:
        out[i] += 1
    return out


def source_stream(src: MixSource, available: int, take: int, rng: random.Random) -> Iterator[tuple[dict, Path]]:
    """`take` records of a source: whole passes in reshuffled shard order, then an exact random subset."""
    files = shard_files(src.path)
    full, rest = divmod(take, available)
    for rep in range(full + (1 if rest else 0)):
        order = files[:]
        rng.shuffle(order)
        need, seen = (available if rep < full else rest), 0
        for f in order:
            if need == 0:
                break
            for d in iter_shard(f):
                if need == 0:
                    break
                # Knuth's selection sampling: exactly `need` of the remaining records, uniformly
                if rep < full or rng.random() * (available - seen) < need:
                    if rep:
                        d["id"] = f"{d['id']}#r{rep}"
                    need -= 1
                    yield d, f.parent
                seen += 1


def interleave(streams: list[Iterator], remaining: list[int], rng: random.Random) -> Iterator:
    """Random merge: each step picks a source with probability proportional to what it has left."""
    remaining = remaining[:]
    left = sum(remaining)
    while left:
        r = rng.random() * left
        i = 0
        while r >= remaining[i]:
            r -= remaining[i]
            i += 1
        remaining[i] -= 1
        left -= 1
        yield next(streams[i])


def buffer_shuffle(items: Iterator, size: int, rng: random.Random) -> Iterator:
    buf: list = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = rng.randrange(size)
        yield buf[j]
        buf[j] = item
    rng.shuffle(buf)
    yield from buf


def run(cfg: MixtureConfig) -> Path:
    counts = [count_records(s.path) for s in cfg.sources]
    for s, c in zip(cfg.sources, counts):
        if c == 0:
            raise ValueError(f"source {s.name!r} at {s.path} has no records")
    takes = allocate(counts, [s.weight for s in cfg.sources], cfg.total)
    streams = [source_stream(s, c, t, random.Random(f"{cfg.seed}:{s.name}"))
               for s, c, t in zip(cfg.sources, counts, takes)]
    mixed = buffer_shuffle(interleave(streams, takes, random.Random(f"{cfg.seed}:merge")), cfg.shuffle_buffer,
                           random.Random(f"{cfg.seed}:shuffle"))
    out = Path(os.path.abspath(cfg.out))  # records name their images under it: absolute, like every image path
    with replace_folder(out, carry=lambda name: name == "images") as new:  # resized images are a cache
        make_run_dir(new, cfg)
        resizer = Resizer(new / "images", cfg.max_pixels, cfg.min_pixels) if cfg.resize_images else None
        written: Counter = Counter()
        with ShardWriter(new, "mix", cfg.format, cfg.shard_size) as writer:
            for d, base in tqdm(mixed, total=sum(takes), desc=f"mix {cfg.name}", unit="rec", mininterval=2):
                d["images"] = [os.path.abspath(resolve_image(p, base)) for p in d.get("images") or []]
                if resizer is not None and not resizer.apply(d):
                    continue
                d["images"] = [rebase(p, new, out) for p in d["images"]]
                d["meta"] = {**(d.get("meta") or {}), "mixture": cfg.name, "max_pixels": cfg.max_pixels,
                             "min_pixels": cfg.min_pixels}
                writer.write(d)
                written[d["source"]] += 1
        write_json(new / "mixture.json", {
            "name": cfg.name, "seed": cfg.seed, "total": writer.count, "max_pixels": cfg.max_pixels,
            "sources": [{"name": s.name, "path": s.path, "weight": s.weight, "available": c, "selected": t,
                         "passes": round(t / c, 3)} for s, c, t in zip(cfg.sources, counts, takes)],
            "written_by_record_source": dict(sorted(written.items())),
            "dropped": (resizer.drops if resizer else Drops()).to_dict(),
            "shards": writer.files,
        })
    log.info("mixture %s: %d records in %d shard(s) -> %s", cfg.name, writer.count, len(writer.files), out)
    return out


class Resizer:
    """Re-encode a record's images within the budget once each, rescaling its pixel boxes.

    Boxes are scaled by the first image's factor: grounding records with several images
    (MedSG-Bench) share one image size."""

    def __init__(self, folder: Path, max_pixels: int, min_pixels: int | None, cache_size: int = 65536):
        self.folder, self.max_pixels, self.min_pixels = folder, max_pixels, min_pixels
        self.drops = Drops()
        self._sizes = lru_cache(maxsize=cache_size)(self._encode)  # (src, dst) -> (original, new) size

    def apply(self, d: dict) -> bool:
        new_paths, sizes = [], []
        for p in d["images"]:
            key = hashlib.blake2b(f"{p}|{self.max_pixels}|{self.min_pixels}".encode(), digest_size=10).hexdigest()
            dst = self.folder / key[:2] / f"{key}.png"
            try:
                sizes.append(self._sizes(p, dst))
            except Exception as e:  # noqa: BLE001 - any decoder failure (zlib.error on gzip-magic junk, ...)
                self.drops.add("image_missing" if isinstance(e, FileNotFoundError) else "image_unreadable",
                               f"{d['id']}: {p}: {type(e).__name__}")
                return False
            new_paths.append(str(dst))
        answer = d.get("answer") or {}
        if answer.get("boxes") and sizes:
            (w0, h0), (w1, h1) = answer.get("image_size") or sizes[0][0], sizes[0][1]
            sx, sy = w1 / w0, h1 / h0
            answer["boxes"] = [{**b, "bbox": [round(b["bbox"][0] * sx, 2), round(b["bbox"][1] * sy, 2),
                                              round(b["bbox"][2] * sx, 2), round(b["bbox"][3] * sy, 2)]}
                               for b in answer["boxes"]]
            answer["image_size"] = [w1, h1]
        d["images"] = new_paths
        return True

    def _encode(self, src: str, dst: Path) -> tuple[tuple[int, int], tuple[int, int]]:
        from medmo.imaging import fit_pixels, open_image

        im = open_image(src)
        small = fit_pixels(im, self.max_pixels, min_pixels=self.min_pixels)
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_suffix(".tmp")
            small.save(tmp, format="PNG")
            os.replace(tmp, dst)
        return im.size, small.size
