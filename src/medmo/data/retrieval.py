"""`medmo data retrieval SRC --out DIR`: image-to-caption retrieval as a verifiable training task.

    medmo data convert roco --raw ~/data/roco --out data/roco --split train
    medmo data retrieval data/roco --out data/roco_retrieval --choices 4

MedMO lists retrieval among its multi-task supervision (stage 3) but does not publish the
format. medmo makes it a multiple-choice question a generative model can be trained and
rewarded on: for each caption record (ROCO, PMC-OA, MedTrinity; any record with one image
and an `answer.text`), the options are its own caption and `choices - 1` hard negatives,
the captions of other images of the same modality whose text is most alike. The record
is task "retrieval" with answer {"choices", "letter"}: evaluation scores it like multiple
choice and GRPO's `accuracy` term verifies the letter.

Hard negatives: word sets (lower case, three letters or more, stop words removed) compared
by Jaccard similarity. Candidates come from an inverted index over each caption's rarest
words, so the cost grows with the number of captions, not its square. A candidate is
never the same caption (after normalising case and spaces), never a caption of the same
image, and never a near-paraphrase (Jaccard >= `max_similarity`), which would make two
options right. Where too few similar captions exist, seeded random captions of the same
modality fill the options, then captions of any modality. Negatives come from the
question's own split only (a training question never shows a test caption); a caption
whose split has too few distinct captions is dropped and counted. The right letter's
position is uniform and seeded.

Departure from CLIP-style retrieval (recall@k over a whole split with an embedding
model): that needs an embedding model and scores a ranking, not an answer; the
multiple-choice form keeps one verifiable answer per sample. Memory: the captions of one
source are held (text only, ~100 bytes each: 100 MB for a million). The output folder is
replaced atomically (medmo.data.shards.replace_folder), as `medmo data convert` does.
"""
from __future__ import annotations

import logging
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Literal

from medmo.config import make_run_dir
from medmo.data.schema import resolve_image
from medmo.data.shards import ShardWriter, iter_records, replace_folder, write_json
from medmo.data.sources import Drops
from medmo.data.sources._qa import mcq_record

log = logging.getLogger(__name__)

QUESTION = "Which caption describes this image?"
_WORD = re.compile(r"[a-z][a-z0-9]{2,}")
_STOP = frozenset(
    "the and with for from this that are was were has have its into onto over under than then there these those "
    "which while where when who whom what shows showing shown image images figure fig arrow arrows see seen case "
    "patient patients left right both also after before between within without demonstrates demonstrating".split())


@dataclass
class RetrievalConfig:
    src: str = field(metadata={"help": "folder of caption records (`medmo data convert roco|pmc_oa|medtrinity`)"})
    out: str = field(metadata={"help": "output folder for the retrieval records and report.json"})
    choices: int = field(default=4, metadata={"help": "options per question (the right caption + negatives)"})
    seed: int = field(default=0, metadata={
        "help": "seed for negatives' tie-breaks, fillers and the right letter's position"})
    max_similarity: float = field(default=0.9, metadata={
        "help": "a candidate this alike (word Jaccard) is a paraphrase, never a negative"})
    rare_words: int = field(default=6, metadata={"help": "each caption's rarest words that index its candidates"})
    max_candidates: int = field(default=200, metadata={
        "help": "candidates scored per caption (bounds the cost of common words)"})
    max_option_chars: int = field(default=400, metadata={
        "help": "longer captions are cut at a word boundary in the options (sequence length)"})
    shard_size: int = field(default=50_000, metadata={"help": "records per shard"})
    format: Literal["jsonl", "parquet"] = field(default="jsonl", metadata={"help": "shard format"})

    def __post_init__(self):
        if self.choices < 2 or self.choices > 26:
            raise ValueError(f"choices must be between 2 and 26 (letters A-Z), got {self.choices}")
        if not 0 < self.max_similarity <= 1:
            raise ValueError(f"max_similarity must be in (0, 1], got {self.max_similarity}")
        if self.max_option_chars < 20:
            raise ValueError(f"max_option_chars must be >= 20, got {self.max_option_chars}")


def words(text: str) -> frozenset[str]:
    """A caption's content words (the unit of similarity)."""
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _STOP)


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def shorten(text: str, limit: int) -> str:
    """The caption as an option line: one line, at most `limit` characters, cut at a word."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


@dataclass
class _Caption:
    rid: str
    image: str
    text: str
    words: frozenset
    modality: str
    split: str
    source: str


def read_captions(src: str | Path, drops: Drops) -> list[_Caption]:
    """Every usable caption record of a folder; the others are counted by reason."""
    out = []
    for rec, base in iter_records(src):
        text = ((rec.get("answer") or {}).get("text") or "").strip()
        images = rec.get("images") or []
        if rec.get("task") not in ("caption", "report"):
            drops.add("not_a_caption", f"{rec.get('id')}: task {rec.get('task')!r}")
        elif len(images) != 1:
            drops.add("not_one_image", f"{rec.get('id')}: {len(images)} images")
        elif not words(text):
            drops.add("empty_caption", str(rec.get("id")))
        else:
            out.append(_Caption(rec["id"], str(resolve_image(images[0], base)), text, words(text),
                                rec.get("modality") or "other", rec.get("split") or "train", rec.get("source") or "?"))
    return out


def hard_negatives(i: int, caps: list[_Caption], index: dict[str, list[int]], df: Counter, cfg: RetrievalConfig,
                   rng: random.Random, by_modality: dict[str, list[int]]) -> list[int] | None:
    """Indexes of `choices - 1` negatives for caption i, most similar first; None if too few exist."""
    me = caps[i]
    banned_text = {_normal(me.text)}

    def usable(j: int) -> bool:
        c = caps[j]
        return (j != i and c.image != me.image and _normal(c.text) not in banned_text
                and jaccard(me.words, c.words) < cfg.max_similarity)

    need = cfg.choices - 1
    rare = sorted(me.words, key=lambda w: (df[w], w))[: cfg.rare_words]
    seen: set[int] = set()
    for w in rare:
        for j in index[w][: cfg.max_candidates]:
            if len(seen) >= cfg.max_candidates:
                break
            seen.add(j)
    scored = sorted((-jaccard(me.words, caps[j].words), j) for j in seen
                    if caps[j].modality == me.modality and usable(j))
    picked: list[int] = []

    def take(j: int) -> bool:
        """Add j if it is still usable (its text not yet an option); True once enough are picked."""
        if usable(j):
            picked.append(j)
            banned_text.add(_normal(caps[j].text))
        return len(picked) == need

    if any(take(j) for _, j in scored):
        return picked
    for pool in (by_modality[me.modality], range(len(caps))):  # fillers: same modality, then any
        if any(take(rng.choice(pool)) for _ in range(8 * need + 32)):
            return picked
    any(take(j) for j in range(len(caps)))  # a tiny source: scan everything once before giving up
    return picked if len(picked) == need else None


def _questions(caps: list[_Caption], cfg: RetrievalConfig, drops: Drops) -> Iterator[dict]:
    """Retrieval records for one split's captions (negatives never cross splits: a train question
    must not show a test caption)."""
    df: Counter = Counter(w for c in caps for w in c.words)
    index: dict[str, list[int]] = defaultdict(list)
    by_modality: dict[str, list[int]] = defaultdict(list)
    for j, c in enumerate(caps):
        by_modality[c.modality].append(j)
        for w in c.words:
            index[w].append(j)
    rng = random.Random(f"{cfg.seed}:retrieval:{caps[0].split}")
    letters = [chr(ord("A") + k) for k in range(cfg.choices)]
    for i, c in enumerate(caps):
        neg = hard_negatives(i, caps, index, df, cfg, rng, by_modality)
        if neg is None:
            drops.add("too_few_negatives", f"{c.rid}: its split {c.split!r} has too few distinct captions")
            continue
        texts = [caps[j].text for j in neg]
        right = rng.randrange(cfg.choices)
        texts.insert(right, c.text)
        choices = {k: shorten(t, cfg.max_option_chars) for k, t in zip(letters, texts)}
        rec = mcq_record(rid=f"{c.rid}/retrieval", source=c.source, split=c.split, question=QUESTION,
                         choices=choices, letter=letters[right], modality=c.modality, images=[c.image],
                         meta={"caption_id": c.rid, "negative_ids": [caps[j].rid for j in neg]})
        yield replace(rec, task="retrieval").to_dict()


def build(cfg: RetrievalConfig) -> Path:
    """Write the retrieval records of `cfg.src` to `cfg.out`, split by split; returns the folder."""
    drops = Drops()
    splits: dict[str, list[_Caption]] = defaultdict(list)
    for c in read_captions(cfg.src, drops):
        splits[c.split].append(c)
    if not splits:
        raise ValueError(f"{cfg.src}: no caption record with one image and a caption; convert a caption source "
                         f"(roco, pmc_oa, medtrinity) there first (dropped: {dict(drops.counts)})")
    out = Path(cfg.out).absolute()
    kept: Counter = Counter()
    with replace_folder(out, carry=lambda name: False) as new:  # a kill leaves the previous output whole
        make_run_dir(new, cfg)
        with ShardWriter(new, "retrieval", cfg.format, cfg.shard_size) as writer:
            for split in sorted(splits):
                for rec in _questions(splits[split], cfg, drops):
                    writer.write(rec)
                    kept[split] += 1
        if writer.count == 0:
            raise ValueError(f"{cfg.src}: no retrieval question could be built: every split has fewer than "
                             f"choices={cfg.choices} distinct captions (dropped: {dict(drops.counts)})")
        write_json(new / "report.json", {"src": str(cfg.src), "choices": cfg.choices, "kept": writer.count,
                                         "kept_by_split": dict(kept), "dropped": drops.to_dict(),
                                         "shards": writer.files})
    log.info("retrieval: %d questions from %s (%d captions dropped) -> %s", writer.count, cfg.src, drops.total, out)
    return out
