"""Text-generation metrics for reports and captions: BLEU-1..4, ROUGE-L, CIDEr-D.

medmo computes these itself, faster than the maintained implementations, and
tests/test_metrics.py proves each equal (to 1e-9) to the reference on the same tokens:

    BLEU-n   nltk `sentence_bleu(weights=(1/n,)*n)`, no smoothing (nltk's method0), averaged
             over samples: sentence level, as MedEvalKit's report evaluator does it. All four
             orders, for every pair at once, from sparse n-gram count matrices.
    ROUGE-L  rouge-score `RougeScorer(["rougeL"])` F-measure (`score_multi`, best reference,
             when a sample has several). The LCS length is computed bit-parallel
             (Hyyrö 2004) on Python integers instead of rouge-score's O(n·m) table.
    CIDEr-D  pycocoevalcap `Cider` (its CiderScorer *is* CIDEr-D: document frequencies from
             the references of the evaluated corpus, hypothesis tf-idf clipped at the
             reference's, Gaussian length penalty sigma=6, mean over n=1..4, x10). Its
             length penalty counts bigrams, not words (`length` is summed where n == 1, the
             2-gram slot); medmo reproduces that. Vectorised on the same count matrices.

The count matrices: every text is tokenized once, tokens become integer ids, and k-gram
ids are built order by order (a k-gram id is the unique id of (its (k-1)-gram id, its
last token)) with numpy, so no Python loop runs over n-grams; a CSR matrix per order
holds counts (rows = texts, duplicates summed by scipy).

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
- MedEvalKit's "cider" comes from the `cidereval` package's `cider` function (the package
  also has a separate `ciderD`, so it is presumably plain CIDEr; medmo has not run it:
  it is not installed here). medmo reports CIDEr-D (pycocoevalcap), as issue 4 asks; the
  paper's tables say "CIDEr". Compare published CIDEr columns with care.
Model-based metrics (RaTEScore, SembScore) live in medmo.eval.model_metrics.
"""
from __future__ import annotations

import math
import sys
from typing import Sequence

import numpy as np
from scipy import sparse

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


class _Corpus:
    """Tokenized hypotheses and references with k-gram count matrices for k = 1..n.

    `hyp[k]` is (n_hyps x V_k), `ref[k]` is (n_refs x V_k) over the same k-gram ids;
    `owner[j]` is the hypothesis index of reference row j (references of one sample are
    contiguous rows).
    """

    def __init__(self, refs: Refs, hyps: Sequence[str], n: int = 4):
        _check(refs, hyps)
        ref_lists = [_ref_list(r) for r in refs]
        self.owner = np.repeat(np.arange(len(hyps)), [len(r) for r in ref_lists]).astype(np.int64)
        texts = [tokenize(h) for h in hyps] + [tokenize(r) for rs in ref_lists for r in rs]
        self.n_hyps, self.n_refs, self.n = len(hyps), len(self.owner), n
        self.hyp_tokens, self.ref_tokens = texts[: self.n_hyps], texts[self.n_hyps :]
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        self.hyp_len, self.ref_len = lengths[: self.n_hyps], lengths[self.n_hyps :]
        counts = self._count(texts, lengths, n)
        self.hyp = [m[: self.n_hyps] for m in counts]
        self.ref = [m[self.n_hyps :] for m in counts]

    @staticmethod
    def _count(texts: list[list[str]], lengths: np.ndarray, n: int) -> list[sparse.csr_matrix]:
        flat = [t for toks in texts for t in toks]
        vocab = {t: i for i, t in enumerate(dict.fromkeys(flat))}
        ids = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
        doc = np.repeat(np.arange(len(texts)), lengths)
        pos = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # position inside its text
        left = np.repeat(lengths, lengths) - pos  # tokens from here to the end of the text
        gram, size, mats = ids, max(len(vocab), 1), []
        for k in range(1, n + 1):
            if k > 1:  # k-gram at i = ((k-1)-gram at i, token at i+k-1), renumbered densely
                nxt = np.zeros_like(ids)
                nxt[: len(ids) - (k - 1)] = ids[k - 1 :]
                valid = left >= k
                uniq, inv = np.unique(gram[valid] * len(vocab) + nxt[valid], return_inverse=True)
                gram = np.zeros_like(ids)
                gram[valid] = inv
                size = max(len(uniq), 1)
            valid = left >= k
            data = np.ones(int(valid.sum()))
            mats.append(sparse.csr_matrix((data, (doc[valid], gram[valid])), shape=(len(texts), size)))
        return mats

    def ref_max(self, k: int) -> sparse.csr_matrix:
        """Per hypothesis, the largest count of each k-gram over its references (BLEU's clip)."""
        coo = self.ref[k - 1].tocoo()
        rows = self.owner[coo.row]
        if len(np.unique(self.owner)) == self.n_refs:  # one reference each: nothing to merge
            return sparse.csr_matrix((coo.data, (rows, coo.col)), shape=(self.n_hyps, coo.shape[1]))
        order = np.lexsort((coo.col, rows))
        rows, cols, vals = rows[order], coo.col[order], coo.data[order]
        first = np.flatnonzero(np.r_[True, (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])]) if len(rows) else np.array([], int)
        maxes = np.maximum.reduceat(vals, first) if len(first) else vals
        return sparse.csr_matrix((maxes, (rows[first], cols[first])), shape=(self.n_hyps, coo.shape[1]))


# ---------------------------------------------------------------- BLEU


def _bleu(c: _Corpus) -> np.ndarray:
    """(n_hyps x n) sentence BLEU-1..n, exactly nltk's sentence_bleu without smoothing."""
    out = np.zeros((c.n_hyps, c.n))
    if c.n_hyps == 0:
        return out
    hl = c.hyp_len.astype(float)
    nums = np.stack([np.asarray(c.hyp[k - 1].minimum(c.ref_max(k)).sum(axis=1)).ravel() for k in range(1, c.n + 1)], 1)
    dens = np.maximum(1.0, hl[:, None] - np.arange(c.n)[None, :])
    # closest reference length: smallest |r - h|, ties to the shorter reference (nltk)
    key = np.abs(c.ref_len - c.hyp_len[c.owner]) * (2**32) + c.ref_len
    closest = np.full(c.n_hyps, np.iinfo(np.int64).max)
    np.minimum.at(closest, c.owner, key)
    closest = (closest % (2**32)).astype(float)
    ok = (nums[:, 0] > 0) & (hl > 0) & (np.bincount(c.owner, minlength=c.n_hyps) > 0)
    bp = np.where(hl > closest, 1.0, np.exp(1 - closest / np.where(hl > 0, hl, 1)))
    # nltk's method0 turns a zero precision into sys.float_info.min (log ~ -708), not 0
    logs = np.log(np.where(nums > 0, nums / dens, sys.float_info.min))
    for n in range(1, c.n + 1):
        out[:, n - 1] = np.where(ok, bp * np.exp(((1 / n) * logs[:, :n]).sum(axis=1)), 0.0)
    return out


def bleu_scores(refs: Refs, hyps: Sequence[str]) -> list[list[float]]:
    """Per sample [BLEU-1, ..., BLEU-4]."""
    return _bleu(_Corpus(refs, hyps)).tolist()


def bleu(refs: Refs, hyps: Sequence[str]) -> dict[str, float]:
    """Mean sentence-level BLEU-1..4 over pairs (MedEvalKit's aggregation)."""
    scores = _bleu(_Corpus(refs, hyps))
    means = scores.mean(axis=0) if len(scores) else np.zeros(4)
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


def _rouge_l(c: _Corpus) -> list[float]:
    refs: list[list[list[str]]] = [[] for _ in range(c.n_hyps)]
    for j, i in enumerate(c.owner):
        refs[i].append(c.ref_tokens[j])
    return [rouge_l_tokens(r, h) for r, h in zip(refs, c.hyp_tokens)]


def rouge_l(refs: Refs, hyps: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure over pairs."""
    scores = _rouge_l(_Corpus(refs, hyps, n=1))
    return float(np.mean(scores)) if scores else 0.0


# ---------------------------------------------------------------- CIDEr-D


def _cider_d(c: _Corpus, sigma: float = 6.0) -> np.ndarray:
    """Per-sample CIDEr-D; document frequencies come from this corpus's references."""
    if c.n_hyps == 0 or c.n_refs == 0 or not any(m.nnz for m in c.ref):
        return np.zeros(c.n_hyps)
    group = sparse.csr_matrix((np.ones(c.n_refs), (c.owner, np.arange(c.n_refs))), shape=(c.n_hyps, c.n_refs))
    # pycocoevalcap's "length" is the bigram count, not the word count
    delta = np.maximum(c.hyp_len - 1, 0)[c.owner] - np.maximum(c.ref_len - 1, 0)
    penalty = np.exp(-(delta.astype(float) ** 2) / (2 * sigma**2))
    sims = np.zeros((c.n_refs, c.n))
    for k in range(c.n):
        H, R = c.hyp[k], c.ref[k]
        df = np.asarray(((group @ (R > 0).astype(float)) > 0).sum(axis=0)).ravel()
        idf = sparse.diags(math.log(c.n_hyps) - np.log(np.maximum(1.0, df)))
        Hw, Rw = H @ idf, R @ idf
        h_norm = np.sqrt(np.asarray(Hw.multiply(Hw).sum(axis=1)).ravel())
        r_norm = np.sqrt(np.asarray(Rw.multiply(Rw).sum(axis=1)).ravel())
        Hx = Hw[c.owner]  # each reference row paired with its hypothesis
        dots = np.asarray(Hx.minimum(Rw).multiply(Rw).sum(axis=1)).ravel()
        denom = h_norm[c.owner] * r_norm
        sims[:, k] = np.divide(dots, denom, out=dots.copy(), where=denom != 0) * penalty
    per_ref = sims.mean(axis=1)
    n_refs = np.bincount(c.owner, minlength=c.n_hyps)
    return np.bincount(c.owner, weights=per_ref, minlength=c.n_hyps) / np.maximum(n_refs, 1) * 10.0


def cider_d_scores(refs: Refs, hyps: Sequence[str]) -> list[float]:
    """Per-sample CIDEr-D (n = 1..4, sigma = 6)."""
    return _cider_d(_Corpus(refs, hyps)).tolist()


def cider_d(refs: Refs, hyps: Sequence[str]) -> float:
    """Corpus CIDEr-D: the mean of the per-sample scores (pycocoevalcap's `score`)."""
    scores = _cider_d(_Corpus(refs, hyps))
    return float(scores.mean()) if len(scores) else 0.0


# ---------------------------------------------------------------- together


def pair_scores(ref: "str | Sequence[str]", hyp: str) -> dict[str, float]:
    """BLEU-1..4 and ROUGE-L of one pair (CIDEr-D needs the corpus: see report_metrics)."""
    c = _Corpus([ref], [hyp])
    out = dict(zip(BLEU_KEYS, _bleu(c)[0].tolist()))
    out["rouge_l"] = _rouge_l(c)[0]
    return out


def report_metrics(refs: Refs, hyps: Sequence[str]) -> dict[str, float]:
    """Corpus aggregates: n, mean BLEU-1..4, mean ROUGE-L, CIDEr-D (texts tokenized and counted once)."""
    c = _Corpus(refs, hyps)
    out: dict[str, float] = {"n": c.n_hyps}
    if c.n_hyps == 0:
        return {**out, **{k: 0.0 for k in (*BLEU_KEYS, "rouge_l", "cider_d")}}
    out.update({k: float(v) for k, v in zip(BLEU_KEYS, _bleu(c).mean(axis=0))})
    out["rouge_l"] = float(np.mean(_rouge_l(c)))
    out["cider_d"] = float(_cider_d(c).mean())
    return out
