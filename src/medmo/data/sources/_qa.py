"""Helpers shared by the VQA and text-QA converters (not a source: the leading underscore
keeps it out of the registry).

- `read_rows` reads the release formats these datasets ship in: .json (a list, or a
  dict keyed by id), .jsonl, .csv/.tsv, .parquet, and a Hugging Face `datasets` folder
  written by `save_to_disk` (a Dataset or a DatasetDict) or a hub snapshot of parquet
  shards (`data/test-00000-of-00001.parquet`).
  It never stops on one bad row: a JSONL line that is not JSON, not an object
  (`"hello"`, `[1, 2]`, `null`) or not UTF-8 comes back as `{"_malformed": "file:line",
  "_reason": ...}`, which `keep` counts; text is decoded with `surrogateescape`, so a bad
  byte in a CSV or JSON file spoils only its row, which `keep` counts as "bad_encoding".
- `save_image` writes an image embedded in a row (HF `{"bytes", "path"}`, raw bytes, or
  a PIL image) once under an image folder and returns its path, so a re-run is
  idempotent. Embedded images go to `image_dir` when the caller passes one, else to
  `$MEDMO_CACHE/images/<source>` (default ~/.cache/medmo).
- `vqa_record` / `mcq_record` build unified records whose user turn is already the
  MedEvalKit prompt (medmo.model.prompts), so the same records train and evaluate.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Iterator

from medmo.config import cache_dir
from medmo.data.schema import IMAGE_TOKEN, Record
from medmo.data.sources import Drops, check_utf8, csv_rows, printable
from medmo.model import prompts

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def find_file(raw: Path, candidates: list[str], what: str) -> Path:
    """`raw` itself when it is a file, else the first of `candidates` (globs) under it."""
    if not raw.exists():
        raise FileNotFoundError(f"{raw} does not exist; expected {what}")
    if raw.is_file():
        return raw
    for pattern in candidates:
        hits = sorted(raw.glob(pattern))
        if hits:
            return hits[0]
    raise FileNotFoundError(f"{raw}: none of {', '.join(candidates)} found; expected {what}")


def is_hf_folder(path: Path) -> bool:
    """A folder written by `datasets` save_to_disk (Dataset or DatasetDict)."""
    return path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists())


def hf_parquet_files(path: Path, split: str) -> list[Path]:
    """Parquet shards of one split in a hub snapshot (data/<split>-*.parquet and friends)."""
    pats = [f"{split}-*.parquet", f"{split}.parquet", f"data/{split}-*.parquet", f"data/{split}.parquet",
            f"*/{split}-*.parquet", f"{split}/*.parquet", f"data/{split}/*.parquet"]
    for p in pats:
        hits = sorted(path.glob(p))
        if hits:
            return hits
    return []


def read_rows(path: Path, split: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a release file or HF folder, as dicts (HF images as {"bytes", "path"})."""
    if path.is_dir():
        if is_hf_folder(path):
            yield from _read_hf_disk(path, split)
            return
        files = hf_parquet_files(path, split or "test")
        if not files:
            raise FileNotFoundError(f"{path}: no save_to_disk dataset and no {split or 'test'}-*.parquet shards")
        for f in files:
            yield from read_rows(f)
        return
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(read_text(path))
        if isinstance(data, dict):
            for key, row in data.items():
                yield {"_key": key, **row} if isinstance(row, dict) else {"_key": key, "_value": row}
        elif isinstance(data, list):
            yield from data
        else:
            raise ValueError(f"{path}: expected a JSON list of rows or an object keyed by id, not a {type(data).__name__}")
    elif suffix == ".jsonl":
        yield from jsonl_rows(path)
    elif suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
            yield from csv_rows(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","), path.name)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(str(path)).iter_batches(batch_size=256):
            yield from batch.to_pylist()
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected .json, .jsonl, .csv, .tsv or .parquet")


def read_text(path: Path) -> str:
    """A release file's text; undecodable bytes kept as lone surrogates (counted per row by `keep`)."""
    return path.read_bytes().decode("utf-8", errors="surrogateescape")


def jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON-lines file, one per line; a line that is not UTF-8, not JSON or
    not an object comes back as {"_malformed": "file:line", "_reason": ...}. Lines are split
    on b"\\n" only (not on U+2028 inside a string, as str.splitlines would)."""
    with path.open("rb") as f:
        for i, raw in enumerate(f, 1):
            where = f"{path.name}:{i}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield {"_malformed": where, "_reason": "bad_encoding"}
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                yield {"_malformed": where}
                continue
            yield row if isinstance(row, dict) else {"_malformed": f"{where}: {type(row).__name__}",
                                                     "_reason": "row_not_object"}


def _read_hf_disk(path: Path, split: str | None) -> Iterator[dict[str, Any]]:
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"{path}: split {split!r} not in this DatasetDict; it has {', '.join(ds)}")
        ds = ds[split]
    for name, feat in ds.features.items():
        if isinstance(feat, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
    yield from ds


def image_folder(source: str, image_dir: str | Path | None) -> Path:
    if image_dir is not None:
        return Path(image_dir)
    return cache_dir("images", source)


def save_image(obj: Any, folder: Path, stem: str) -> str:
    """Write an embedded image once (content-addressed name) and return its path."""
    if isinstance(obj, dict):
        data, name = obj.get("bytes"), obj.get("path") or ""
        if data is None and name and Path(name).exists():
            return str(Path(name).resolve())
    elif isinstance(obj, (bytes, bytearray)):
        data, name = bytes(obj), ""
    elif hasattr(obj, "save"):  # PIL image
        buf = io.BytesIO()
        obj.save(buf, format="PNG")
        data, name = buf.getvalue(), "x.png"
    else:
        raise ValueError(f"unsupported image value of type {type(obj).__name__}")
    if not data:
        raise ValueError("empty image bytes")
    suffix = Path(name).suffix.lower() or ".png"
    out = folder / f"{stem}-{hashlib.sha1(data).hexdigest()[:10]}{suffix}"
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return str(out)


def embedded_image_rows(raw: Path, split: str, source: str, drops: Drops,
                        image_dir: str | Path | None) -> Iterator[tuple[int, dict, str]]:
    """(index, row, saved image path) of a Hugging Face VQA release that embeds one image per
    row (VQA-RAD, PathVQA); rows without question, answer or a readable image are counted."""
    folder = image_folder(source, image_dir)
    for i, row in enumerate(read_rows(raw, split)):
        where = f"{split}[{i}]"
        with drops.guard(where):
            if not keep(row, drops, where, ("question", "answer", "image")):
                continue
            try:
                path = save_image(row["image"], folder, split)  # content-addressed: shared images stored once
            except ValueError as e:
                drops.add("bad_image", f"{where}: {e}")
                continue
            yield i, row, path


def yes_no_closed(answer: str) -> bool:
    return answer.strip().rstrip(".").lower() in ("yes", "no")


def vqa_prompt(question: str, answer: str, closed: bool, lang: str = "en", prompt_by: str = "yes_no") -> str:
    """MedEvalKit's wording, chosen the way its loaders choose it: `prompt_by="yes_no"`
    (VQA-RAD, PathVQA) asks a yes/no question when the answer is yes/no and an open one
    otherwise; `prompt_by="answer_type"` (SLAKE) asks closed questions for "a single
    word or phrase" and open ones "concisely"."""
    zh = lang == "zh"
    if prompt_by == "answer_type":
        tpl = (prompts.VQA_CLOSED_ZH if zh else prompts.VQA_CLOSED) if closed else (prompts.VQA_OPEN_ZH if zh else prompts.VQA_OPEN)
    elif yes_no_closed(answer):
        tpl = prompts.VQA_YES_NO_ZH if zh else prompts.VQA_YES_NO
    else:
        tpl = prompts.VQA_OPEN_ZH if zh else prompts.VQA_OPEN
    return tpl.format(question=question.strip())


def vqa_record(*, rid: str, source: str, split: str, modality: str, images: list[str], question: str,
               answer: str, closed: bool, lang: str = "en", prompt_by: str = "yes_no",
               meta: dict[str, Any] | None = None) -> Record:
    answer = str(answer).strip()
    prompt = "".join(f"{IMAGE_TOKEN}\n" for _ in images) + vqa_prompt(question, answer, closed, lang, prompt_by)
    return Record(
        id=rid, source=source, split=split, task="vqa", modality=modality, images=list(images),
        messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
        answer={"text": answer, "closed": bool(closed)},
        meta={"question": question.strip(), "lang": lang, "prompt_version": prompts.PROMPT_VERSION, **(meta or {})},
    )


def mcq_prompt(question: str, choices: dict[str, str]) -> str:
    options = "\n".join(prompts.MCQ_OPTION.format(letter=k, text=v) for k, v in choices.items())
    return prompts.MCQ.format(question=question.strip(), options=options)


def mcq_record(*, rid: str, source: str, split: str, question: str, choices: dict[str, str], letter: str,
               modality: str = "text", images: list[str] | None = None, context: str = "",
               meta: dict[str, Any] | None = None) -> Record:
    """A multiple-choice record; `context` (PubMedQA's abstract) goes before the question
    as "Context: ..." the way MedEvalKit builds it."""
    images = list(images or [])
    body = mcq_prompt(question, choices)
    if context:
        body = f"Context: {context.strip()}\n{body}"
    prompt = "".join(f"{IMAGE_TOKEN}\n" for _ in images) + body
    return Record(
        id=rid, source=source, split=split, task="mcq", modality=modality, images=images,
        messages=[{"role": "user", "content": prompt},
                  {"role": "assistant", "content": f"{letter}. {choices[letter]}"}],
        answer={"choices": dict(choices), "letter": letter},
        meta={"question": question.strip(), "prompt_version": prompts.PROMPT_VERSION, **(meta or {})},
    )


def clean_choices(options: Any) -> dict[str, str]:
    """Options as {"A": text, ...} from a dict, a list of texts, or [{"letter", "content"}]."""
    if isinstance(options, str):
        options = json.loads(options) if options.strip().startswith(("[", "{")) else [options]
    if isinstance(options, dict):
        out = {str(k).strip().upper(): str(v).strip() for k, v in options.items() if v is not None and str(v).strip()}
    elif isinstance(options, list) and options and isinstance(options[0], dict):
        out = {str(o["letter"]).strip().upper(): str(o["content"]).strip() for o in options}
    elif isinstance(options, list):
        out = {LETTERS[i]: str(v).strip() for i, v in enumerate(options)}
    else:
        raise ValueError(f"options of type {type(options).__name__}")
    if len(out) < 2:
        raise ValueError(f"fewer than two options: {out}")
    return out


def choices_and_letter(options: Any, answer: Any, drops: Drops, where: str) -> tuple[dict[str, str], str] | None:
    """The options as {"A": text, ...} and the answer's letter, or None (counted) when the
    options cannot be read ("bad_options") or the answer is not one of them."""
    try:
        choices = clean_choices(options)
    except (ValueError, KeyError) as e:
        drops.add("bad_options", f"{where}: {e}")
        return None
    letter = str(answer).strip().upper()
    if letter not in choices:
        drops.add("answer_not_in_choices", where)
        return None
    return choices, letter


def keep(row: Any, drops: Drops, where: str, required: tuple[str, ...]) -> bool:
    """False (and counted) when a row is malformed, not an object, not valid UTF-8 or
    misses a required field."""
    if not isinstance(row, dict):
        drops.add("row_not_object", f"{where}: {printable(repr(row))}")
        return False
    if "_malformed" in row:
        drops.add(row.get("_reason", "malformed_row"), row["_malformed"])
        return False
    try:
        check_utf8(row)
    except UnicodeError:
        drops.add("bad_encoding", where)
        return False
    missing = [k for k in required if row.get(k) in (None, "")]
    if missing:
        drops.add("missing_field", f"{where}: no {', '.join(missing)}")
        return False
    return True
