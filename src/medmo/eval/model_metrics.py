"""Model-based report metrics, run only from local model files (never downloaded).

Point MEDMO_REPORT_MODELS (or the `model_dir` argument) at a folder holding:

    RaTE-NER-Deberta/    RaTEScore's NER model   (hub: Angelakeke/RaTE-NER-Deberta)
    BioLORD-2023-C/      RaTEScore's embedder    (hub: FremyCompany/BioLORD-2023-C)
    chexbert.pth         CheXbert checkpoint     (Stanford AIMI, from the CheXbert / CXR-Report-Metric README)
    bert-base-uncased/   CheXbert's BERT config + tokenizer (hub: bert-base-uncased)

RaTEScore (Zhao et al., 2024) also needs the `RaTEScore` package (`pip install
'medmo[report]'`, Python 3.12+); medmo calls `RaTEScore(bert_model=..., eval_model=...).compute_score(hyps,
refs)` exactly as MedEvalKit does. SembScore (Yu et al., 2023, CXR-Report-Metric) is the
cosine similarity between the CheXbert embeddings (the [CLS] vector of CheXbert's BERT)
of the generated and the reference report, averaged over pairs; medmo computes it with
transformers' BertModel loaded from chexbert.pth (its "module.bert.*" weights).

CheXbert F1 (Smit et al., 2020, the labeler; the F1 protocol of R2Gen-style report
generation papers as vilmedic's / f1chexbert's CheXbert scorer computes it) uses the same
two files: the 14 linear heads of chexbert.pth ("module.linear_heads.0-13": 13 heads with
classes blank / positive / negative / uncertain, then "No Finding" with blank / positive)
label the [CLS] vector of each report; an observation counts as present when it is
positive or uncertain (that scorer's "rrg" mode); F1 is micro and macro over the 14
observations and over the five of the CheXpert competition (Atelectasis, Cardiomegaly,
Consolidation, Edema, Pleural Effusion), macro giving 0 to an observation absent from both
sides (scikit-learn's classification_report, which that scorer uses). Reports are
tokenized by BertTokenizer with truncation to 512 tokens ([CLS] + 510 + [SEP], as
CheXbert's own code cuts them). Keys: chexbert_f1_micro14, _macro14, _micro5, _macro5.
The rule labeler of medmo.eval.chexpert (keys rule_chexpert_f1_*) is an approximation,
kept for rewards and for runs without the CheXbert file; published numbers are CheXbert's.

A metric whose files are missing is skipped and `available_metrics` returns a message
naming what to put where; nothing is faked. Neither metric has been run against the
real weights in medmo's CI (no network there); the SembScore and CheXbert F1 code paths
are tested on a randomly initialised BERT with CheXbert's heads, saved in its checkpoint layout.
"""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Sequence

from medmo.eval.chexpert import FIVE

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
        need = [f"{where}/{m}" for m in missing] + ([] if has_pkg else ["the RaTEScore package (pip install 'medmo[report]', Python 3.12+)"])
        notes.append("ratescore skipped: needs " + ", ".join(need))
    else:
        ok.append("ratescore")
    missing = _missing(root, SEMBSCORE_FILES)
    for name, why in (("sembscore", ""), ("chexbert_f1", " (rule_chexpert_f1_* is only a rule-based approximation)")):
        if missing:
            notes.append(f"{name} skipped: needs " + ", ".join(f"{where}/{m}" for m in missing) + why)
        else:
            ok.append(name)
    return ok, notes


def ratescore(refs: Sequence[str], hyps: Sequence[str], path: str | Path | None = None) -> list[float]:
    from RaTEScore import RaTEScore

    root = model_dir(path)
    scorer = RaTEScore(bert_model=str(root / RATESCORE_FILES[0]), eval_model=str(root / RATESCORE_FILES[1]))
    return [float(x) for x in scorer.compute_score(list(hyps), list(refs))]


CHEXBERT_OBSERVATIONS = (  # the order of CheXbert's heads
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
    "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices",
    "No Finding",
)
# head output class -> medmo.eval.chexpert's label convention (1 positive, 0 negative, -1 uncertain, None blank)
_CLASS_LABEL = (None, 1, 0, -1)


def load_chexbert(path: str | Path | None = None):
    """(BertModel, state dict of chexbert.pth, BertTokenizer) from the report-models folder
    (loaded once per folder and file version: SembScore and CheXbert F1 share it)."""
    root = model_dir(path)
    missing_files = _missing(root, SEMBSCORE_FILES)
    if missing_files:
        where = f"{root}" if root else f"${ENV} (unset)"
        raise FileNotFoundError("CheXbert needs " + ", ".join(f"{where}/{m}" for m in missing_files))
    return _load_chexbert(str(root.resolve()), (root / SEMBSCORE_FILES[0]).stat().st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _load_chexbert(root_dir: str, _mtime_ns: int):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    root = Path(root_dir)
    bert_dir = root / SEMBSCORE_FILES[1]
    model = BertModel(BertConfig.from_pretrained(bert_dir), add_pooling_layer=False)
    state = torch.load(root / SEMBSCORE_FILES[0], map_location="cpu", weights_only=True)
    state = state.get("model_state_dict", state)
    bert = {k.split("bert.", 1)[1]: v for k, v in state.items() if "bert." in k}
    missing, _ = model.load_state_dict(bert, strict=False)
    if [m for m in missing if "position_ids" not in m]:
        raise ValueError(f"{root / SEMBSCORE_FILES[0]}: not a CheXbert checkpoint (missing {missing[:3]} ...)")
    return model.eval(), state, BertTokenizer.from_pretrained(bert_dir)


def _cls_vectors(model, tok, texts: Sequence[str], batch_size: int):
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = tok([t or "" for t in texts[i : i + batch_size]], padding=True, truncation=True, max_length=512,
                        return_tensors="pt")
            out.append(model(**batch).last_hidden_state[:, 0])
    return torch.cat(out) if out else torch.zeros(0, model.config.hidden_size)


def chexbert_embeddings(texts: Sequence[str], path: str | Path | None = None, batch_size: int = 32):
    """[CLS] embeddings of CheXbert's BERT for each text (torch tensor, n x hidden)."""
    model, _, tok = load_chexbert(path)
    return _cls_vectors(model, tok, texts, batch_size)


def chexbert_labels(texts: Sequence[str], path: str | Path | None = None, batch_size: int = 32) -> list[dict[str, int]]:
    """CheXbert's label of each report, as {observation: 1 | 0 | -1} without the blank ones
    (the shape of medmo.eval.chexpert.label_report, so both labelers feed the same F1)."""
    import torch

    model, state, tok = load_chexbert(path)
    heads = []
    for i in range(len(CHEXBERT_OBSERVATIONS)):
        w, b = state.get(f"module.linear_heads.{i}.weight", state.get(f"linear_heads.{i}.weight")), \
            state.get(f"module.linear_heads.{i}.bias", state.get(f"linear_heads.{i}.bias"))
        if w is None or b is None:
            raise ValueError(f"{model_dir(path) / SEMBSCORE_FILES[0]}: CheXbert head {i} "
                             f"({CHEXBERT_OBSERVATIONS[i]}) is missing; is this the CheXbert labeler checkpoint?")
        heads.append((w.float(), b.float()))
    cls = _cls_vectors(model, tok, texts, batch_size).float()
    classes = torch.stack([(cls @ w.T + b).argmax(dim=-1) for w, b in heads], dim=1)  # n x 14
    return [{o: _CLASS_LABEL[int(c)] for o, c in zip(CHEXBERT_OBSERVATIONS, row) if _CLASS_LABEL[int(c)] is not None}
            for row in classes]


def label_f1(ref_labels: Sequence[dict[str, int]], hyp_labels: Sequence[dict[str, int]],
             uncertain_as_positive: bool = True) -> dict[str, float]:
    """Micro and macro F1 over the 14 and the 5 observations between two label lists
    ({observation: 1 | 0 | -1}); present = positive (or uncertain, by default)."""
    if len(ref_labels) != len(hyp_labels):
        raise ValueError(f"{len(ref_labels)} references but {len(hyp_labels)} hypotheses; they must pair up")
    present = (1, -1) if uncertain_as_positive else (1,)
    tp = dict.fromkeys(CHEXBERT_OBSERVATIONS, 0)
    fp, fn = dict(tp), dict(tp)
    for ref, hyp in zip(ref_labels, hyp_labels):
        for o in CHEXBERT_OBSERVATIONS:
            r, h = ref.get(o) in present, hyp.get(o) in present
            tp[o] += r and h
            fp[o] += h and not r
            fn[o] += r and not h

    def f1(obs: Sequence[str]) -> float:
        t, p, n = (sum(d[o] for o in obs) for d in (tp, fp, fn))
        return 2 * t / (2 * t + p + n) if t + p + n else 0.0

    return {"micro14": f1(CHEXBERT_OBSERVATIONS),
            "macro14": sum(f1([o]) for o in CHEXBERT_OBSERVATIONS) / len(CHEXBERT_OBSERVATIONS),
            "micro5": f1(FIVE), "macro5": sum(f1([o]) for o in FIVE) / len(FIVE)}


def chexbert_f1(refs: Sequence[str], hyps: Sequence[str], path: str | Path | None = None) -> dict[str, float]:
    """{"chexbert_f1_micro14", "_macro14", "_micro5", "_macro5"} (module docstring)."""
    labels = chexbert_labels(list(refs) + list(hyps), path)
    return {f"chexbert_f1_{k}": v for k, v in label_f1(labels[:len(refs)], labels[len(refs):]).items()}


def sembscore(refs: Sequence[str], hyps: Sequence[str], path: str | Path | None = None) -> list[float]:
    import torch

    ref_emb, hyp_emb = chexbert_embeddings(refs, path), chexbert_embeddings(hyps, path)
    return [float(x) for x in torch.nn.functional.cosine_similarity(ref_emb, hyp_emb, dim=-1)]


def model_metrics(refs: Sequence[str], hyps: Sequence[str], path: str | Path | None = None,
                  names: Sequence[str] = ("ratescore", "sembscore", "chexbert_f1")) -> dict:
    """{"ratescore": mean, "sembscore": mean, "chexbert_f1_micro14": ..., ...} for the metrics in
    `names` whose files exist, plus "notes" naming the files of those that could not run."""
    ok, notes = available_metrics(path)
    notes = [n for n in notes if n.split()[0] in names]
    out: dict = {}
    for name, fn in (("ratescore", ratescore), ("sembscore", sembscore)):
        if name not in names:
            continue
        if name in ok and hyps:
            scores = fn(refs, hyps, path)
            out[name] = sum(scores) / len(scores)
    if "chexbert_f1" in names and "chexbert_f1" in ok and hyps:
        out.update(chexbert_f1(refs, hyps, path))
    for note in notes:
        logger.info(note)
    if notes:
        out["notes"] = notes
    return out
