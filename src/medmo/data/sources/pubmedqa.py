"""PubMedQA (Jin et al., EMNLP 2019): yes/no/maybe questions on PubMed abstracts.

Release formats read:
- GitHub pubmedqa/pubmedqa `data/ori_pqal.json` (1,000 expert-labelled PQA-L items keyed
  by PMID: QUESTION, CONTEXTS [..], LABELS, MESHES, YEAR, final_decision yes|no|maybe,
  LONG_ANSWER) with `data/test_ground_truth.json` (PMID -> label: the official 500-item
  test split). Split "test" = those 500; "all" = the 1,000.
- Hugging Face `qiaojin/PubMedQA` config pqa_labeled (parquet/save_to_disk: pubid,
  question, context {contexts, labels, meshes}, long_answer, final_decision; one
  "train" split of 1,000, converted whole).
Posed as three-option multiple choice (A yes, B no, C maybe) with the abstract as
"Context:", as MedEvalKit does. Licence: MIT.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import keep, mcq_record, read_rows

CHOICES = {"A": "yes", "B": "no", "C": "maybe"}
_LETTER = {v: k for k, v in CHOICES.items()}


def _record(pmid: str, split: str, question: str, contexts: list[str], decision: str, meta: dict) -> Record:
    return mcq_record(rid=f"pubmedqa/{split}/{pmid}", source="pubmedqa", split=split, question=question, choices=CHOICES,
                      letter=_LETTER[decision], context="\n".join(contexts), meta={"pmid": pmid, **meta})


@register_source("pubmedqa", tasks=("mcq",), modality="text")
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the PubMedQA data folder (ori_pqal.json, test_ground_truth.json) or qiaojin/PubMedQA pqa_labeled")
    split = split or "test"
    ori = raw / "ori_pqal.json" if raw.is_dir() else raw
    if ori.name == "ori_pqal.json" and ori.exists():
        gt_file = ori.parent / "test_ground_truth.json"
        wanted = None
        if split == "test":
            if not gt_file.exists():
                raise FileNotFoundError(f"{gt_file} not found; the official test split needs it (or use split='all')")
            wanted = json.loads(gt_file.read_text(encoding="utf-8"))
        for row in read_rows(ori):
            pmid = row["_key"]
            if wanted is not None and pmid not in wanted:
                continue
            if not keep(row, drops, pmid, ("QUESTION", "CONTEXTS", "final_decision")):
                continue
            decision = (wanted or {}).get(pmid, row["final_decision"])
            if decision not in _LETTER:
                drops.add("bad_label", f"{pmid}: {decision!r}")
                continue
            yield _record(pmid, split, row["QUESTION"], row["CONTEXTS"], decision,
                          {"year": row.get("YEAR"), "long_answer": row.get("LONG_ANSWER")})
        return
    for i, row in enumerate(read_rows(raw, split if split != "test" else "train")):
        if not keep(row, drops, f"row {i}", ("question", "context", "final_decision")):
            continue
        if row["final_decision"] not in _LETTER:
            drops.add("bad_label", f"row {i}: {row['final_decision']!r}")
            continue
        ctx = row["context"]["contexts"] if isinstance(row["context"], dict) else list(row["context"])
        yield _record(str(row.get("pubid", i)), split, row["question"], ctx, row["final_decision"],
                      {"long_answer": row.get("long_answer")})
