"""`medmo data overlap TRAIN BENCH`: contamination between a training set and benchmarks.

    medmo data overlap runs/mix_stage1 data/bench_vqa_rad
    medmo data overlap runs/mix_stage1 data/benches --drop runs/mix_stage1_clean --image-distance 6

Four kinds of overlap, each a match between one training and one benchmark record:
- image_exact: the same image file bytes (SHA-256);
- image_near:  perceptual hashes (imagehash pHash of the decoded image, so a DICOM and
               its PNG export match) within `image_distance` bits of 64. Measured on 200
               VQA-RAD images: a JPEG re-encode, half size, brightness +10% or contrast
               +20% moved the hash by at most 6 bits, while the closest two distinct
               images were 10 bits apart; hence the default 6;
- text:        the records' text is near-identical: Jaccard similarity of normalized
               character `ngram`-grams >= `text_similarity`. The text compared is the
               question for vqa/mcq (meta.question when the converter kept it) and the
               reference for caption/report; grounding prompts are templates and are not
               compared. Texts shorter than `min_text_chars` are skipped: "Is there a
               pneumothorax?" recurs in every chest set without being a leak. So are
               questions about an image that the benchmark itself asks of
               `generic_repeats` or more records ("What modality is used to take this
               image?"): they are about the image, which the image checks cover;
- question:    the same near-identical question text, asked of an image by the training
               record. Without the same image this is weak evidence (the answer is
               about another picture), so it is reported but not in the default
               `drop_on`; text-only questions (MedQA-style) and reports are "text".

The benchmark side is indexed in memory; the (much larger) training side is streamed
once. Nothing is all-pairs in Python: exact hashes are dict lookups; near images use the
pigeonhole principle (two 64-bit hashes within d bits agree exactly on at least one of
d+1 chunks, so chunks are bucket keys and every candidate is verified), or a vectorized
scan for benchmarks under 40k images where that is faster; text uses MinHash with LSH
banding (32 bands x 4 rows: a pair with Jaccard 0.8 is found with probability > 0.999,
0.6 with 0.98, 0.5 with 0.87) and verifies candidates exactly. bench/data_overlap.py
measures both against brute force (same answers; 5x faster at 1M benchmark images,
~95x for 5k benchmark questions).

Writes overlap.json (counts by kind and by source, examples), overlap.md,
matches.jsonl (every match, at most `max_matches_per_record` per training record) and,
with `drop`, the training set minus every record with an overlap of a kind in `drop_on`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import unicodedata
from collections import Counter, defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medmo.config import make_run_dir
from medmo.data.schema import resolve_image
from medmo.data.shards import ShardWriter, iter_records, replace_folder, write_json

log = logging.getLogger(__name__)

KINDS = ("image_exact", "image_near", "text", "question")
BANDS, ROWS = 32, 4
_PRIME = np.uint64(1_000_003)


@dataclass
class OverlapConfig:
    train: str = field(metadata={"help": "training records folder (shards) or file"})
    bench: str = field(metadata={"help": "benchmark records folder (shards) or file"})
    out: str | None = field(default=None, metadata={"help": "report folder (default: TRAIN/overlap)"})
    drop: str | None = field(default=None, metadata={
        "help": "write the training set without the overlapping records here"})
    drop_on: list[str] = field(default_factory=lambda: list(KINDS[:3]), metadata={
        "help": "match kinds that drop a record (image_exact, image_near, text, question)"})
    image_distance: int = field(default=6, metadata={
        "help": "max perceptual-hash Hamming distance (of 64 bits); 0 = identical hashes"})
    text_similarity: float = field(default=0.8, metadata={"help": "min Jaccard similarity of question character n-grams"})
    ngram: int = field(default=5, metadata={"help": "character n-gram length"})
    min_text_chars: int = field(default=40, metadata={"help": "shorter normalized texts are not compared"})
    generic_repeats: int = field(default=3, metadata={
        "help": "image questions the benchmark repeats this often are not compared"})
    max_matches_per_record: int = field(default=20, metadata={
        "help": "matches listed per training record in matches.jsonl"})

    def __post_init__(self):
        if not 0 <= self.image_distance <= 16:
            raise ValueError(f"image_distance must be in 0..16 bits, got {self.image_distance}")
        if not 0 < self.text_similarity <= 1:
            raise ValueError(f"text_similarity must be in (0, 1], got {self.text_similarity}")
        bad = sorted(set(self.drop_on) - set(KINDS))
        if bad:
            raise ValueError(f"drop_on {bad} not among {', '.join(KINDS)}")
        if self.drop and Path(self.drop).resolve() in (Path(self.train).resolve(), Path(self.bench).resolve()):
            raise ValueError(f"drop={self.drop} would write into an input folder; give a new folder")


# ---- text ---------------------------------------------------------------------------------

def record_text(d: dict) -> str:
    """The text whose duplication means a leak (see the module doc); '' when none applies."""
    task = d.get("task")
    if task in ("vqa", "mcq"):
        q = (d.get("meta") or {}).get("question")
        if not q:
            q = " ".join(m["content"] for m in d.get("messages", []) if m.get("role") == "user")
        return normalize(q)
    if task in ("caption", "report"):
        a = d.get("answer") or {}
        ref = a.get("text") or " ".join(filter(None, (a.get("findings"), a.get("impression"))))
        if not ref:
            ref = next((m["content"] for m in d.get("messages", []) if m.get("role") == "assistant"), "")
        return normalize(ref)
    return ""


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text.replace("<image>", " ")).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def shingles(text: str, n: int) -> np.ndarray:
    """Sorted unique 64-bit polynomial hashes of the text's character n-grams (vectorized)."""
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    m = max(1, cp.size - n + 1)
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):  # arithmetic mod 2^64 is the point
        for k in range(min(n, cp.size)):
            h = h * _PRIME + cp[k:k + m]
    return np.unique(h)


class MinHasher:
    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, 2**63, BANDS * ROWS, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, BANDS * ROWS, dtype=np.uint64)

    def bands(self, sh: np.ndarray) -> list[bytes]:
        with np.errstate(over="ignore"):  # multiply-add mod 2^64 is the point
            sig = (self.a[:, None] * sh[None, :] + self.b[:, None]).min(axis=1)
        return [bytes([i]) + sig[i * ROWS:(i + 1) * ROWS].tobytes() for i in range(BANDS)]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique arrays (what `shingles` returns)."""
    if not a.size or not b.size:
        return 0.0
    pos = np.minimum(np.searchsorted(b, a), b.size - 1)
    inter = int(np.count_nonzero(b[pos] == a))
    return inter / (a.size + b.size - inter)


# ---- images -------------------------------------------------------------------------------

class ImageHasher:
    """(sha256, phash as int) per image path, or None if unreadable; bounded cache."""

    def __init__(self, cache_size: int = 65536):
        self.failures: Counter = Counter()
        self._cached = lru_cache(maxsize=cache_size)(self._hash)

    def __call__(self, path: str) -> tuple[str, int] | None:
        return self._cached(path)

    def _hash(self, path: str) -> tuple[str, int] | None:
        import imagehash

        from medmo.imaging import open_image

        if not os.path.isfile(path):
            self.failures["image_missing"] += 1
            return None
        try:
            with open(path, "rb") as f:
                sha = hashlib.sha256(f.read()).hexdigest()
            ph = imagehash.phash(open_image(path))
        except (ValueError, OSError):
            self.failures["image_unreadable"] += 1
            return None
        return sha, int(str(ph), 16)


@lru_cache(maxsize=None)
def chunk_bounds(distance: int) -> tuple[tuple[int, int], ...]:
    """(shift, bits) of the distance+1 chunks 64 bits are split into."""
    edges = [round(64 * k / (distance + 1)) for k in range(distance + 2)]
    return tuple((lo, hi - lo) for lo, hi in zip(edges[:-1], edges[1:]))


def chunk_keys(h: int, distance: int) -> list[tuple[int, int]]:
    """Hashes within `distance` bits of each other share at least one (chunk, value) key."""
    return [(j, (h >> lo) & ((1 << bits) - 1)) for j, (lo, bits) in enumerate(chunk_bounds(distance))]


class PHashIndex:
    """Near-duplicate lookup over 64-bit perceptual hashes: pigeonhole buckets, numpy verification.

    Every bucket holds the hashes sharing one chunk value; a query visits its d+1 buckets
    (about (d+1) * N / 2^(64/(d+1)) candidates) instead of all N hashes. Below
    `scan_below` hashes a vectorized scan of all of them is faster (bench/data_overlap.py
    measured the crossover near 40k hashes at d=6) and is used instead."""

    def __init__(self, distance: int, scan_below: int = 40_000):
        self.distance, self.scan_below = distance, scan_below
        self._hashes: list[int] = []
        self._records: list[int] = []

    def add(self, h: int, record: int) -> None:
        self._hashes.append(h)
        self._records.append(record)

    def build(self) -> None:
        self.hashes = np.array(self._hashes, dtype=np.uint64)
        self.records = np.array(self._records, dtype=np.int64)
        self.buckets: list[dict[int, np.ndarray]] = []
        for lo, bits in chunk_bounds(self.distance) if self.hashes.size >= self.scan_below else ():
            values = (self.hashes >> np.uint64(lo)) & np.uint64((1 << bits) - 1)
            order = np.argsort(values, kind="stable")
            uniq, starts = np.unique(values[order], return_index=True)
            ends = np.append(starts[1:], len(order))
            self.buckets.append({int(u): order[a:b] for u, a, b in zip(uniq, starts, ends)})
        del self._hashes, self._records

    def query(self, h: int) -> dict[int, int]:
        """record -> Hamming distance, for every indexed hash within `distance` of h."""
        found: dict[int, int] = {}
        q = np.uint64(h)
        if self.hashes.size < self.scan_below:
            groups = [np.arange(self.hashes.size)]
        else:
            groups = [c for j, (_, v) in enumerate(chunk_keys(h, self.distance))
                      if (c := self.buckets[j].get(v)) is not None]
        for cand in groups:
            dist = np.bitwise_count(self.hashes[cand] ^ q)
            keep = dist <= self.distance
            for rec, dd in zip(self.records[cand[keep]].tolist(), dist[keep].tolist()):
                found[rec] = min(dd, found.get(rec, dd))
        return found


# ---- the index of the benchmark -----------------------------------------------------------

class BenchIndex:
    def __init__(self, cfg: OverlapConfig, hasher: ImageHasher, minhash: MinHasher):
        self.cfg, self.hasher, self.minhash = cfg, hasher, minhash
        self.ids: list[str] = []
        self.sources: list[str] = []
        self.by_sha: dict[str, list[int]] = defaultdict(list)
        self.phash = PHashIndex(cfg.image_distance)
        self.by_band: dict[bytes, list[int]] = defaultdict(list)
        self.shingles: dict[int, np.ndarray] = {}
        self.generic = 0  # benchmark texts left out as generic image questions

    def add_all(self, folder: str) -> None:
        texts: dict[int, str] = {}
        repeats: Counter = Counter()
        for d, base in tqdm(iter_records(folder), desc="index benchmark", unit="rec", mininterval=2):
            i = len(self.ids)
            self.ids.append(str(d["id"]))
            self.sources.append(str(d.get("source")))
            for p in d.get("images") or []:
                hashed = self.hasher(str(resolve_image(p, base)))
                if hashed:
                    self.by_sha[hashed[0]].append(i)
                    self.phash.add(hashed[1], i)
            text = record_text(d)
            if len(text) >= self.cfg.min_text_chars:
                texts[i] = text
                repeats[text] += bool(d.get("images"))
        self.phash.build()
        for i, text in texts.items():
            if repeats[text] >= self.cfg.generic_repeats:
                self.generic += 1
                continue
            sh = shingles(text, self.cfg.ngram)
            self.shingles[i] = sh
            for band in self.minhash.bands(sh):
                self.by_band[band].append(i)

    def query(self, d: dict, base: Path) -> dict[int, tuple[str, float]]:
        """bench record -> (kind, distance or similarity), the strongest kind per bench record."""
        hits: dict[int, tuple[str, float]] = {}
        for p in d.get("images") or []:
            hashed = self.hasher(str(resolve_image(p, base)))
            if not hashed:
                continue
            for i in self.by_sha.get(hashed[0], ()):
                hits[i] = ("image_exact", 0)
            for i, dist in self.phash.query(hashed[1]).items():
                if i not in hits:
                    hits[i] = ("image_near", dist)
        text = record_text(d)
        if len(text) >= self.cfg.min_text_chars and self.shingles:
            kind = "question" if d.get("images") and d.get("task") in ("vqa", "mcq") else "text"
            sh = shingles(text, self.cfg.ngram)
            seen: set[int] = set()
            for band in self.minhash.bands(sh):
                for i in self.by_band.get(band, ()):
                    if i in seen or i in hits:
                        continue
                    seen.add(i)
                    sim = jaccard(sh, self.shingles[i])
                    if sim >= self.cfg.text_similarity:
                        hits[i] = (kind, round(sim, 4))
        return hits


def run(cfg: OverlapConfig) -> Path:
    train = Path(cfg.train)
    out = make_run_dir(cfg.out or (train / "overlap" if train.is_dir() else train.with_name(train.stem + "_overlap")),
                       cfg)
    hasher = ImageHasher()
    index = BenchIndex(cfg, hasher, MinHasher())
    index.add_all(cfg.bench)
    bench_failures = dict(hasher.failures)
    hasher.failures.clear()

    by_kind: Counter = Counter()
    train_hit_by_source: Counter = Counter()
    bench_hit: set[int] = set()
    examples: list[dict] = []
    n_train = n_overlapping = n_dropped = 0
    tmp = out / "matches.jsonl.tmp"
    # the cleaned set is swapped in whole (medmo.data.shards.replace_folder): a kill keeps the previous one
    drop_dir = replace_folder(cfg.drop, carry=lambda name: False) if cfg.drop else nullcontext()
    with tmp.open("w", encoding="utf-8") as matches, drop_dir as new:
        writer = ShardWriter(new, "dedup", "jsonl") if cfg.drop else None
        with writer or nullcontext():
            for d, base in tqdm(iter_records(cfg.train), desc="scan training set", unit="rec", mininterval=2):
                n_train += 1
                hits = index.query(d, base)
                if hits:
                    n_overlapping += 1
                    train_hit_by_source[str(d.get("source"))] += 1
                    bench_hit.update(hits)
                    for i, (kind, value) in sorted(hits.items())[: cfg.max_matches_per_record]:
                        by_kind[kind] += 1
                        m = {"train_id": d["id"], "bench_id": index.ids[i], "bench_source": index.sources[i],
                             "kind": kind, "similarity" if kind in ("text", "question") else "distance": value}
                        matches.write(json.dumps(m, ensure_ascii=False, sort_keys=True) + "\n")
                        if len(examples) < 20:
                            examples.append(m)
                if writer is not None:
                    if any(kind in cfg.drop_on for kind, _ in hits.values()):
                        n_dropped += 1
                    else:
                        d["images"] = [os.path.abspath(resolve_image(p, base)) for p in d.get("images") or []]
                        writer.write(d)
    os.replace(tmp, out / "matches.jsonl")
    report = {
        "train": cfg.train, "bench": cfg.bench, "train_records": n_train, "bench_records": len(index.ids),
        "thresholds": {"image_distance": cfg.image_distance, "text_similarity": cfg.text_similarity,
                       "ngram": cfg.ngram, "min_text_chars": cfg.min_text_chars,
                       "generic_repeats": cfg.generic_repeats},
        "bench_texts_indexed": len(index.shingles), "bench_texts_generic": index.generic,
        "train_records_overlapping": n_overlapping, "bench_records_overlapping": len(bench_hit),
        "matches_by_kind": {k: by_kind.get(k, 0) for k in KINDS},
        "overlapping_train_by_source": dict(sorted(train_hit_by_source.items())),
        "overlapping_bench_by_source": dict(sorted(Counter(index.sources[i] for i in bench_hit).items())),
        "unhashable_images": {"bench": bench_failures, "train": dict(hasher.failures)},
        "examples": examples,
        "drop": {"out": cfg.drop, "drop_on": cfg.drop_on, "dropped": n_dropped,
                 "kept": writer.count if writer else None} if cfg.drop else None,
    }
    write_json(out / "overlap.json", report)
    (out / "overlap.md").write_text(to_markdown(report), encoding="utf-8")
    log.info("%d of %d training records overlap %d benchmark records -> %s", n_overlapping, n_train,
             len(bench_hit), out)
    return out


def to_markdown(r: dict) -> str:
    share = r["bench_records_overlapping"] / max(r["bench_records"], 1)
    lines = ["# Train/benchmark overlap", "", f"- training set: `{r['train']}` ({r['train_records']} records)",
             f"- benchmarks: `{r['bench']}` ({r['bench_records']} records)",
             f"- training records with an overlap: {r['train_records_overlapping']}",
             f"- benchmark records seen in training: {r['bench_records_overlapping']} ({share:.1%})",
             f"- thresholds: {r['thresholds']}", "", "| kind | matches |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in r["matches_by_kind"].items()]
    lines += ["", "| benchmark source | records seen in training |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in r["overlapping_bench_by_source"].items()]
    if r["drop"]:
        lines += ["", f"Wrote {r['drop']['kept']} training records to `{r['drop']['out']}`, "
                      f"dropped {r['drop']['dropped']} (kinds: {', '.join(r['drop']['drop_on'])})."]
    return "\n".join(lines) + "\n"

