"""PubMedQA (Jin et al., EMNLP 2019): yes/no/maybe questions on PubMed abstracts.

Release formats read:
- GitHub pubmedqa/pubmedqa `data/ori_pqal.json` (1,000 expert-labelled PQA-L items keyed
  by PMID: QUESTION, CONTEXTS [..], LABELS, MESHES, YEAR, final_decision yes|no|maybe,
  LONG_ANSWER) with `data/test_ground_truth.json` (PMID -> label: the official 500-item
  test split). Split "test" = those 500; "train" = the other 500 (never a test item:
  it is what a training mixture may use); "all" = the 1,000.
- Hugging Face `qiaojin/PubMedQA` config pqa_labeled (parquet/save_to_disk: pubid,
  question, context {contexts, labels, meshes}, long_answer, final_decision; one
  "train" split of all 1,000 labelled items). Split "test" selects the official 500
  (below), "train" the other 500, "all" the 1,000.
- Hugging Face `openlifescienceai/pubmedqa`, the copy MedEvalKit loads: a "test" split of
  the 500, each row {"data": {"Question", "Context" [..], "Options" {A, B, C},
  "Correct Option"}} (the fields MedEvalKit's loader reads; no PMID is read from it). Its
  own test split is taken as the official one.
The GitHub copy's `medagents/test.jsonl` style (question = abstract + question) is not
read: its prompt could not be MedEvalKit's "Context: ..." layout.
The official test split (500 PMIDs, what MedEvalKit's openlifescienceai/pubmedqa copy and
published tables use) is test_ground_truth.json. Without that file it is re-derived the
way the PubMedQA repository made it (preprocess/split_dataset.py, "pqal"): a Python
`random` generator seeded 0; the PMIDs of each label (yes, no, maybe, each in file order)
shuffled and cut in two halves (the first ceil(n/2) to cross-validation, the rest to
test); if the two sets differ in size, one PMID drawn from the first moves to the second.
The result depends on the copy's row order, so it is accepted only when it matches the
official split's fingerprint (TEST_FINGERPRINT, the SHA-256 of the sorted test PMIDs);
it matches for the GitHub ori_pqal.json. A copy whose order does not reproduce it is
evaluated whole (all labelled items), every record flagged meta.not_comparable, so the
run is reported partial and never compared with published numbers as the 500.
Posed as three-option multiple choice (A yes, B no, C maybe) with the abstract as
"Context:", as MedEvalKit does. Licence: MIT.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import hf_parquet_files, keep, mcq_record, read_rows

CHOICES = {"A": "yes", "B": "no", "C": "maybe"}
_LETTER = {v: k for k, v in CHOICES.items()}
TEST_FINGERPRINT = "849f8c5496168d4bc2080ca64fc87ee1f431024600118eb171427c73a0331b6d"  # of test_ground_truth.json
NOT_COMPARABLE = ("PubMedQA: this copy's row order does not reproduce the official 500 test ids "
                  "(give ori_pqal.json with test_ground_truth.json); all labelled items evaluated")


def fingerprint(pmids) -> str:
    return hashlib.sha256(",".join(sorted(str(p) for p in pmids)).encode()).hexdigest()


def official_test_ids(labelled: list[tuple[str, str]]) -> set[str] | None:
    """The official test PMIDs re-derived from (pmid, final_decision) pairs in file order
    (see the module docstring), or None when they do not match TEST_FINGERPRINT."""
    rng = random.Random(0)
    by_label: dict[str, list[str]] = {"yes": [], "no": [], "maybe": []}
    for pmid, label in labelled:
        if label not in by_label:
            return None
        by_label[label].append(str(pmid))
    keep_out, test = [], []
    for pmids in by_label.values():
        rng.shuffle(pmids)
        half = math.ceil(len(pmids) / 2)
        keep_out += pmids[:half]
        test += pmids[half:]
    if len(test) != len(keep_out):
        moved = rng.choice(keep_out)
        keep_out.remove(moved)
        test.append(moved)
    return set(test) if fingerprint(test) == TEST_FINGERPRINT else None


def _test_ids_for_train(split: str, test_ids) -> set[str]:
    """The PMIDs split "train" must leave out: the official test 500 (the benchmark's), so a
    training mixture never holds them; a copy whose test ids cannot be told is refused."""
    if split != "train":
        return set()
    if not test_ids:
        raise ValueError("PubMedQA split 'train' (the 500 labelled items outside the official test) needs the "
                         "official test ids: give ori_pqal.json with test_ground_truth.json, or the qiaojin/PubMedQA "
                         "pqa_labeled copy in its original row order")
    return {str(p) for p in test_ids}


def _record(pmid: str, split: str, question: str, contexts: list[str], decision: str, meta: dict) -> Record:
    return mcq_record(rid=f"pubmedqa/{split}/{pmid}", source="pubmedqa", split=split, question=question, choices=CHOICES,
                      letter=_LETTER[decision], context="\n".join(contexts), meta={"pmid": pmid, **meta})


@register_source("pubmedqa", tasks=("mcq",), modality="text", licence="MIT",
                 url="https://github.com/pubmedqa/pubmedqa (HF qiaojin/PubMedQA)", splits={"train": 500, "test": 500})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the PubMedQA data folder (ori_pqal.json, test_ground_truth.json) or qiaojin/PubMedQA pqa_labeled")
    split = split or "test"
    ori = raw / "ori_pqal.json" if raw.is_dir() else raw
    if ori.name == "ori_pqal.json" and ori.exists():
        gt_file = ori.parent / "test_ground_truth.json"
        rows = list(read_rows(ori))
        wanted, flag = None, None
        if split == "test" and gt_file.exists():
            wanted = json.loads(gt_file.read_text(encoding="utf-8"))
        elif split == "test":
            derived = official_test_ids([(r.get("_key"), r.get("final_decision")) for r in rows])
            wanted = {p: r["final_decision"] for r in rows if derived and (p := r.get("_key")) in derived} or None
            flag = None if derived else NOT_COMPARABLE
        held_out = _test_ids_for_train(split, json.loads(gt_file.read_text(encoding="utf-8")) if gt_file.exists() else
                                       official_test_ids([(r.get("_key"), r.get("final_decision")) for r in rows]))
        for i, row in enumerate(rows):
            with drops.guard(f"{ori.name}[{i}]"):
                pmid = row["_key"]
                if (wanted is not None and pmid not in wanted) or pmid in held_out:
                    continue
                if not keep(row, drops, pmid, ("QUESTION", "CONTEXTS", "final_decision")):
                    continue
                decision = (wanted or {}).get(pmid, row["final_decision"])
                if decision not in _LETTER:
                    drops.add("bad_label", f"{pmid}: {decision!r}")
                    continue
                yield _record(pmid, split, row["QUESTION"], row["CONTEXTS"], decision,
                              {"year": row.get("YEAR"), "long_answer": row.get("LONG_ANSWER"), **_flag(flag)})
        return
    own_test = split == "test" and (raw.is_file() or bool(hf_parquet_files(raw, "test")))
    rows = list(read_rows(raw, "test" if own_test else "train" if split in ("test", "all") else split))
    if rows and isinstance(rows[0].get("data"), dict):
        yield from _openlifescienceai(rows, drops, split)
        return
    wanted, flag = None, None
    if split == "test":
        wanted = official_test_ids([(str(r.get("pubid")), r.get("final_decision")) for r in rows])
        flag = None if wanted else NOT_COMPARABLE
    held_out = _test_ids_for_train(split, official_test_ids([(str(r.get("pubid")), r.get("final_decision")) for r in rows])
                                   if split == "train" else set())
    for i, row in enumerate(rows):
        with drops.guard(f"row {i}"):
            if (wanted is not None and str(row.get("pubid")) not in wanted) or str(row.get("pubid")) in held_out:
                continue
            if not keep(row, drops, f"row {i}", ("question", "context", "final_decision")):
                continue
            if row["final_decision"] not in _LETTER:
                drops.add("bad_label", f"row {i}: {row['final_decision']!r}")
                continue
            ctx = row["context"]["contexts"] if isinstance(row["context"], dict) else list(row["context"])
            yield _record(str(row.get("pubid", i)), split, row["question"], ctx, row["final_decision"],
                          {"long_answer": row.get("long_answer"), **_flag(flag)})


def _openlifescienceai(rows: list[dict], drops: Drops, split: str) -> Iterator[Record]:
    for i, row in enumerate(rows):
        with drops.guard(f"row {i}"):
            data = row["data"]
            if not isinstance(data, dict):
                drops.add("malformed_row", f"row {i}")
                continue
            if not keep(data, drops, f"row {i}", ("Question", "Context", "Options", "Correct Option")):
                continue
            decision = str(data["Options"].get(data["Correct Option"], "")).strip().lower()
            if decision not in _LETTER:
                drops.add("bad_label", f"row {i}: {data['Correct Option']!r}")
                continue
            ctx = [data["Context"]] if isinstance(data["Context"], str) else list(data["Context"])
            yield _record(str(row.get("id", i)), split, data["Question"], ctx, decision, {})


def _flag(reason: str | None) -> dict:
    return {"not_comparable": reason} if reason else {}
