"""medmo's BLEU / ROUGE-L / CIDEr-D equal the maintained implementations (nltk, rouge-score,
pycocoevalcap) to 1e-9 on the same tokens, and behave on empty and edge inputs."""
from __future__ import annotations

import random
import warnings

import pytest
from nltk.translate.bleu_score import sentence_bleu
from pycocoevalcap.cider.cider import Cider
from rouge_score import rouge_scorer

from medmo.eval import metrics as M

TOL = 1e-9
WORDS = "the heart size is normal no focal consolidation pleural effusion left right lung base mild . , stable".split()


class _Whitespace:
    """rouge-score tokenizer that keeps medmo's tokens as they are (same tokenized inputs)."""

    def tokenize(self, text):
        return text.split()


def _corpus(seed: int, n: int):
    rng = random.Random(seed)

    def text(lo):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, 40)))

    refs = [text(1) for _ in range(n)]
    hyps = [text(0) for _ in range(n)]
    refs[1] = [text(1), text(1), text(1)]  # a multi-reference sample (captioning)
    hyps[2] = ""  # an empty hypothesis
    hyps[3] = refs[3]  # a perfect one
    return refs, hyps


def _toks(ref):
    return [M.tokenize(r) for r in M._ref_list(ref)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu_equals_nltk_sentence_bleu(seed):
    refs, hyps = _corpus(seed, 120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns on zero n-gram overlaps
        for ref, hyp, ours in zip(refs, hyps, M.bleu_scores(refs, hyps)):
            for n in range(1, 5):
                theirs = sentence_bleu(_toks(ref), M.tokenize(hyp), weights=[1 / n] * n)
                assert abs(ours[n - 1] - theirs) < TOL, (ref, hyp, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rouge_l_equals_rouge_score(seed):
    refs, hyps = _corpus(seed, 120)
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Whitespace())
    for ref, hyp in zip(refs, hyps):
        theirs = scorer.score_multi([" ".join(t) for t in _toks(ref)], " ".join(M.tokenize(hyp)))["rougeL"].fmeasure
        assert abs(M.rouge_l_tokens(_toks(ref), M.tokenize(hyp)) - theirs) < TOL, (ref, hyp)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cider_d_equals_pycocoevalcap(seed):
    refs, hyps = _corpus(seed, 150)
    gts = {i: [" ".join(t) for t in _toks(r)] for i, r in enumerate(refs)}
    res = {i: [" ".join(M.tokenize(h))] for i, h in enumerate(hyps)}
    score, scores = Cider().compute_score(gts, res)
    ours = M.cider_d_scores(refs, hyps)
    assert max(abs(a - b) for a, b in zip(ours, scores)) < TOL
    assert abs(M.cider_d(refs, hyps) - score) < TOL


def test_lcs_matches_dynamic_programming():
    rng = random.Random(7)
    for _ in range(200):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]  # > 64 tokens crosses a machine word
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
        assert M.lcs_length(a, b) == table[-1][-1]


PAIR_CASES = [
    # (reference, hypothesis, expected subset of pair_scores)
    ("No acute cardiopulmonary process.", "No acute cardiopulmonary process.", {"bleu1": 1.0, "bleu4": 1.0, "rouge_l": 1.0}),  # identical
    ("No acute cardiopulmonary process.", "", {"bleu1": 0.0, "bleu4": 0.0, "rouge_l": 0.0}),  # empty hypothesis: 0, no crash
    ("", "Heart size normal.", {"bleu1": 0.0, "rouge_l": 0.0}),  # empty reference
    ("heart normal", "lungs clear", {"bleu1": 0.0, "rouge_l": 0.0}),  # no overlap at all
    ("the heart is normal", "heart the", {"rouge_l": 2 * 0.5 * 0.25 / 0.75}),  # LCS 1: P=1/2, R=1/4
    ("Heart normal.", "heart normal .", {"bleu1": 1.0, "rouge_l": 1.0}),  # '.' split off as a token, case folded
    ("Heart.Normal", "heart normal", {"bleu1": 0.5, "rouge_l": 0.5}),  # only a space goes before '.': "heart", ".normal"
    (["lungs clear", "heart normal"], "heart normal", {"bleu1": 1.0, "rouge_l": 1.0}),  # best of several references
]


@pytest.mark.parametrize("ref,hyp,expected", PAIR_CASES)
def test_pair_scores_table(ref, hyp, expected):
    got = M.pair_scores(ref, hyp)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=1e-12), k


def test_short_hypothesis_gets_brevity_penalty():
    # 2 of 4 reference words, both matching: p1 = 1, BP = exp(1 - 4/2)
    assert M.pair_scores("a b c d", "a b")["bleu1"] == pytest.approx(2.718281828459045 ** (1 - 2))


def test_report_metrics_empty_and_all_empty():
    assert M.report_metrics([], []) == {"n": 0, "bleu1": 0.0, "bleu2": 0.0, "bleu3": 0.0, "bleu4": 0.0, "rouge_l": 0.0, "cider_d": 0.0}
    out = M.report_metrics(["", ""], ["", "x"])  # pycocoevalcap would crash: no reference n-grams at all
    assert out["cider_d"] == 0.0 and out["rouge_l"] == 0.0


def test_report_metrics_keys_and_ranges():
    refs, hyps = _corpus(3, 30)
    out = M.report_metrics(refs, hyps)
    assert out["n"] == 30
    assert set(out) == {"n", *M.METRICS}
    assert all(0.0 <= out[k] <= 1.0 for k in (*M.BLEU_KEYS, "rouge_l"))


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        M.bleu(["a", "b"], ["a"])
