"""Model-based report metrics, run only from local model files (never downloaded).

Point MEDMO_REPORT_MODELS (or the `model_dir` argument) at a folder holding:

    RaTE-NER-Deberta/    RaTEScore's NER model   (hub: Angelakeke/RaTE-NER-Deberta)
    BioLORD-2023-C/      RaTEScore's embedder    (hub: FremyCompany/BioLORD-2023-C)
    chexbert.pth         CheXbert checkpoint     (Stanford AIMI, from the CheXbert / CXR-Report-Metric README)
    bert-base-uncased/   CheXbert's BERT config + tokenizer (hub: bert-base-uncased)

RaTEScore (Zhao et al., 2024) also needs the `RaTEScore` package (`pip install
RaTEScore`); medmo calls `RaTEScore(bert_model=..., eval_model=...).compute_score(hyps,
refs)` exactly as MedEvalKit does. SembScore (Yu et al., 2023, CXR-Report-Metric) is the
cosine similarity between the CheXbert embeddings (the [CLS] vector of CheXbert's BERT)
of the generated and the reference report, averaged over pairs; medmo computes it with
transformers' BertModel loaded from chexbert.pth (its "module.bert.*" weights).

A metric whose files are missing is skipped and `available_metrics` returns a message
naming what to put where; nothing is faked. Neither metric has been run against the
real weights in medmo's CI (no network there); the SembScore code path is tested on a
randomly initialised BERT saved in CheXbert's checkpoint layout.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

logger = logging.getLogger(__name__)

ENV = "MEDMO_REPORT_MODELS"
RATESCORE_FILES = ("RaTE-NER-Deberta", "BioLORD-2023-C")
SEMBSCORE_FILES = ("chexbert.pth", "bert-base-uncased")


def model_dir(path: str | Path | None = None) -> Path | None:
    path = path or os.environ.get(ENV)
    return Path(path) if path else None


def _missing(root: Path | None, names: Sequence[str]) -> list[str]:
    return [n for n in names if root is None or not (root / n).exists()]


def available_metrics(path: str | Path | None = None) -> tuple[list[str], list[str]]:
    """(names that can run, one message per metric that cannot, naming the files it needs)."""
    root = model_dir(path)
    where = f"{root}" if root else f"${ENV} (unset)"
    ok, notes = [], []
    missing = _missing(root, RATESCORE_FILES)
    try:
        import RaTEScore  # noqa: F401
        has_pkg = True
    except ImportError:
        has_pkg = False
    if missing or not has_pkg:
        need = [f"{where}/{m}" for m in missing] + ([] if has_pkg else ["the RaTEScore package (pip install RaTEScore)"])
        notes.append("ratescore skipped: needs " + ", ".join(need))
    else:
        ok.append("ratescore")
    missing = _missing(root, SEMBSCORE_FILES)
    if missing:
        notes.append("sembscore skipped: needs " + ", ".join(f"{where}/{m}" for m in missing))
    else:
        ok.append("sembscore")
    return ok, notes


def ratescore(refs: Sequence[str], hyps: Sequence[str], path: str | Path | None = None) -> list[float]:
    from RaTEScore import RaTEScore

    root = model_dir(path)
    scorer = RaTEScore(bert_model=str(root / RATESCORE_FILES[0]), eval_model=str(root / RATESCORE_FILES[1]))
    return [float(x) for x in scorer.compute_score(list(hyps), list(refs))]


def chexbert_embeddings(texts: Sequence[str], path: str | Path | None = None, batch_size: int = 32):
    """[CLS] embeddings of CheXbert's BERT for each text (torch tensor, n x hidden)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    root = model_dir(path)
    bert_dir = root / SEMBSCORE_FILES[1]
    model = BertModel(BertConfig.from_pretrained(bert_dir), add_pooling_layer=False)
    state = torch.load(root / SEMBSCORE_FILES[0], map_location="cpu", weights_only=True)
    state = state.get("model_state_dict", state)
    bert = {k.split("bert.", 1)[1]: v for k, v in state.items() if "bert." in k}
    missing, _ = model.load_state_dict(bert, strict=False)
    if [m for m in missing if "position_ids" not in m]:
        raise ValueError(f"{root / SEMBSCORE_FILES[0]}: not a CheXbert checkpoint (missing {missing[:3]} ...)")
    tok = BertTokenizer.from_pretrained(bert_dir)
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = tok([t or "" for t in texts[i : i + batch_size]], padding=True, truncation=True, max_length=512, return_tensors="pt")
            out.append(model(**batch).last_hidden_state[:, 0])
    return torch.cat(out) if out else torch.zeros(0, model.config.hidden_size)


def sembscore(refs: Sequence[str], hyps: Sequence[str], path: str | Path | None = None) -> list[float]:
    import torch

    ref_emb, hyp_emb = chexbert_embeddings(refs, path), chexbert_embeddings(hyps, path)
    return [float(x) for x in torch.nn.functional.cosine_similarity(ref_emb, hyp_emb, dim=-1)]


def model_metrics(refs: Sequence[str], hyps: Sequence[str], path: str | Path | None = None,
                  names: Sequence[str] = ("ratescore", "sembscore")) -> dict:
    """{"ratescore": mean, "sembscore": mean} for the metrics in `names` whose files exist,
    plus "notes" naming the files of those that could not run."""
    ok, notes = available_metrics(path)
    notes = [n for n in notes if n.split()[0] in names]
    out: dict = {}
    for name, fn in (("ratescore", ratescore), ("sembscore", sembscore)):
        if name not in names:
            continue
        if name in ok and hyps:
            scores = fn(refs, hyps, path)
            out[name] = sum(scores) / len(scores)
    for note in notes:
        logger.info(note)
    if notes:
        out["notes"] = notes
    return out
