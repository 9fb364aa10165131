"""Text-generation metrics for reports and captions: BLEU-1..4, ROUGE-L, CIDEr-D.

medmo computes these itself, faster than the maintained implementations, and
tests/test_metrics.py proves each equal (to 1e-9) to the reference on the same tokens:

    BLEU-n   nltk `sentence_bleu(weights=(1/n,)*n)`, no smoothing (nltk's method0), averaged
             over samples: sentence level, as MedEvalKit's report evaluator does it. All four
             orders come from one n-gram count per pair instead of nltk's four passes.
    ROUGE-L  rouge-score `RougeScorer(["rougeL"])` F-measure (`score_multi`, best reference,
             when a sample has several). The LCS length is computed bit-parallel
             (Hyyrö 2004) on Python integers instead of rouge-score's O(n·m) table.
    CIDEr-D  pycocoevalcap `Cider` (its CiderScorer *is* CIDEr-D: document frequencies from
             the references of the evaluated corpus, hypothesis tf-idf clipped at the
             reference's, Gaussian length penalty sigma=6, mean over n=1..4, x10). Its
             length penalty counts bigrams, not words (`length` is summed where n == 1, the
             2-gram slot); medmo reproduces that. Vectorised with scipy sparse matrices.

Tokenization (one for all metrics, MedEvalKit's `prep_reports`): lower-case, "." becomes
" .", split on whitespace. MedEvalKit splits on single spaces; medmo on any whitespace,
so a tab or newline never glues two words.

Where medmo departs from MedEvalKit (alibaba-damo-academy/MedEvalKit, eval_report.py):
- An empty hypothesis scores 0 on every metric and counts in the mean; MedEvalKit skips
  it from the sums but divides by the full count (same effect) and crashes in ROUGE on
  some inputs. An empty reference scores 0 too (pycocoevalcap crashes when every
  reference is empty).
- ROUGE-L is rouge-score's (Google), not the `rouge` package MedEvalKit uses, whose
  summary-level union-LCS gives slightly different numbers; MedEvalKit also truncates
  the response to 2048 characters first, medmo does not.
- MedEvalKit's "cider" is `cidereval.cider` (plain CIDEr, no clipping or length penalty);
  medmo reports CIDEr-D, the metric the captioning literature and the paper's tables name.
  The two are not interchangeable.
Model-based metrics (RaTEScore, SembScore) live in medmo.eval.model_metrics.
"""
from __future__ import annotations

import math
import sys
from collections import Counter
from typing import Sequence

import numpy as np

Refs = Sequence["str | Sequence[str]"]
BLEU_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4")
# Metadata next to the metrics (lighteval style): all are higher-is-better, averaged over samples.
METRICS = {k: {"higher_is_better": True, "aggregation": "mean"} for k in (*BLEU_KEYS, "rouge_l", "cider_d")}


def tokenize(text: str | None) -> list[str]:
    """MedEvalKit's report tokenization: lower-case, '.' split off as its own token."""
    return (text or "").lower().replace(".", " .").split()


def _ref_list(ref: "str | Sequence[str]") -> list[str]:
    return [ref] if isinstance(ref, str) or ref is None else list(ref)


def _check(refs: Refs, hyps: Sequence[str]) -> None:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses; they must pair up one to one")


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(zip(*(tokens[i:] for i in range(n))))


# ---------------------------------------------------------------- BLEU


def bleu_tokens(refs: list[list[str]], hyp: list[str], max_n: int = 4) -> list[float]:
    """[BLEU-1, ..., BLEU-max_n] of one hypothesis, exactly nltk's sentence_bleu without smoothing."""
    if not hyp or not refs:
        return [0.0] * max_n
    hyp_len = len(hyp)
    nums, dens = [], []
    for n in range(1, max_n + 1):
        max_ref = _ngrams(refs[0], n)
        for r in refs[1:]:
            max_ref |= _ngrams(r, n)  # Counter union keeps the largest count
        nums.append(sum((_ngrams(hyp, n) & max_ref).values()))  # clipped counts
        dens.append(max(1, hyp_len - n + 1))
    if nums[0] == 0:
        return [0.0] * max_n
    closest = min((len(r) for r in refs), key=lambda rl: (abs(rl - hyp_len), rl))
    bp = 1.0 if hyp_len > closest else math.exp(1 - closest / hyp_len)
    # nltk's method0 turns a zero precision into sys.float_info.min (log ~ -708), not 0.
    logs = [math.log(num / den) if num else math.log(sys.float_info.min) for num, den in zip(nums, dens)]
    return [bp * math.exp(math.fsum((1 / n) * lp for lp in logs[:n])) for n in range(1, max_n + 1)]


def bleu(refs: Refs, hyps: Sequence[str]) -> dict[str, float]:
    """Mean sentence-level BLEU-1..4 over pairs (MedEvalKit's aggregation)."""
    _check(refs, hyps)
    if not hyps:
        return {k: 0.0 for k in BLEU_KEYS}
    rows = [bleu_tokens([tokenize(r) for r in _ref_list(ref)], tokenize(h)) for ref, h in zip(refs, hyps)]
    means = np.mean(np.array(rows, dtype=float), axis=0)
    return {k: float(v) for k, v in zip(BLEU_KEYS, means)}


# ---------------------------------------------------------------- ROUGE-L


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel over `a` (Hyyrö 2004)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_tokens(refs: list[list[str]], hyp: list[str]) -> float:
    """ROUGE-L F-measure, best over references (rouge-score's score_multi)."""
    best = 0.0
    for ref in refs:
        if not ref or not hyp:
            continue
        lcs = lcs_length(ref, hyp)
        p, r = lcs / len(hyp), lcs / len(ref)
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
        best = max(best, f)
    return best


def rouge_l(refs: Refs, hyps: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure over pairs."""
    _check(refs, hyps)
    if not hyps:
        return 0.0
    return float(np.mean([rouge_l_tokens([tokenize(r) for r in _ref_list(ref)], tokenize(h)) for ref, h in zip(refs, hyps)]))


# ---------------------------------------------------------------- CIDEr-D


def cider_d_scores(refs: Refs, hyps: Sequence[str], n: int = 4, sigma: float = 6.0) -> list[float]:
    """Per-sample CIDEr-D; document frequencies come from this corpus's references."""
    from scipy import sparse

    _check(refs, hyps)
    n_docs = len(hyps)
    if n_docs == 0:
        return []
    vocab: dict[tuple, int] = {}
    h_rows, h_cols, h_vals = [], [], []
    r_rows, r_cols, r_vals = [], [], []
    owner, h_len, r_len = [], [], []

    def cook(tokens: list[str], rows: list, cols: list, vals: list, row: int) -> int:
        for k in range(1, n + 1):
            counts = _ngrams(tokens, k)
            rows.extend([row] * len(counts))
            cols.extend([vocab.setdefault(g, len(vocab)) for g in counts])
            vals.extend(counts.values())
        return max(len(tokens) - 1, 0)  # pycocoevalcap's "length": the bigram count

    for i, (ref, hyp) in enumerate(zip(refs, hyps)):
        h_len.append(cook(tokenize(hyp), h_rows, h_cols, h_vals, i))
        for r in _ref_list(ref):
            r_len.append(cook(tokenize(r), r_rows, r_cols, r_vals, len(owner)))
            owner.append(i)
    if not r_vals:
        return [0.0] * n_docs
    n_vocab = len(vocab)
    order = np.empty(n_vocab, dtype=np.int64)
    for g, j in vocab.items():
        order[j] = len(g) - 1
    owner_arr = np.asarray(owner)
    H = sparse.csr_matrix((np.asarray(h_vals, float), (h_rows, h_cols)), shape=(n_docs, n_vocab))
    R = sparse.csr_matrix((np.asarray(r_vals, float), (r_rows, r_cols)), shape=(len(owner), n_vocab))
    # Document frequency: in how many samples' reference sets an n-gram occurs.
    group = sparse.csr_matrix((np.ones(len(owner)), (owner_arr, np.arange(len(owner)))), shape=(n_docs, len(owner)))
    df = np.asarray(((group @ (R > 0).astype(float)) > 0).sum(axis=0)).ravel()
    idf = sparse.diags(math.log(n_docs) - np.log(np.maximum(1.0, df)))
    Hw, Rw = H @ idf, R @ idf
    onehot = sparse.csr_matrix((np.ones(n_vocab), (np.arange(n_vocab), order)), shape=(n_vocab, n))
    h_norm = np.sqrt(np.asarray((Hw.multiply(Hw) @ onehot).todense()))
    r_norm = np.sqrt(np.asarray((Rw.multiply(Rw) @ onehot).todense()))
    Hx = Hw[owner_arr]  # each reference row paired with its hypothesis
    dots = np.asarray((Hx.minimum(Rw).multiply(Rw) @ onehot).todense())
    denom = h_norm[owner_arr] * r_norm
    sims = np.divide(dots, denom, out=dots.copy(), where=denom != 0)
    delta = np.asarray(h_len, float)[owner_arr] - np.asarray(r_len, float)
    sims *= np.exp(-(delta**2) / (2 * sigma**2))[:, None]
    per_ref = sims.mean(axis=1)
    n_refs = np.bincount(owner_arr, minlength=n_docs)
    totals = np.bincount(owner_arr, weights=per_ref, minlength=n_docs)
    return [float(x) for x in totals / np.maximum(n_refs, 1) * 10.0]


def cider_d(refs: Refs, hyps: Sequence[str]) -> float:
    """Corpus CIDEr-D: the mean of the per-sample scores (pycocoevalcap's `score`)."""
    scores = cider_d_scores(refs, hyps)
    return float(np.mean(scores)) if scores else 0.0


# ---------------------------------------------------------------- together


def pair_scores(ref: "str | Sequence[str]", hyp: str) -> dict[str, float]:
    """BLEU-1..4 and ROUGE-L of one pair (CIDEr-D needs the corpus: see report_metrics)."""
    r = [tokenize(x) for x in _ref_list(ref)]
    h = tokenize(hyp)
    out = dict(zip(BLEU_KEYS, bleu_tokens(r, h)))
    out["rouge_l"] = rouge_l_tokens(r, h)
    return out


def report_metrics(refs: Refs, hyps: Sequence[str]) -> dict[str, float]:
    """Corpus aggregates: n, mean BLEU-1..4, mean ROUGE-L, CIDEr-D."""
    _check(refs, hyps)
    pairs = [pair_scores(r, h) for r, h in zip(refs, hyps)]
    out: dict[str, float] = {"n": len(hyps)}
    for k in (*BLEU_KEYS, "rouge_l"):
        out[k] = float(np.mean([p[k] for p in pairs])) if pairs else 0.0
    out["cider_d"] = cider_d(refs, hyps)
    return out
