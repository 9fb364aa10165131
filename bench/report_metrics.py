"""BLEU-1..4 + ROUGE-L + CIDEr-D on synthetic report pairs: medmo vs the reference implementations.

    .venv/bin/python bench/report_metrics.py            # 10,000 pairs (the issue's size)
    .venv/bin/python bench/report_metrics.py --n 1000   # quicker

One process, same tokens for both sides (medmo.eval.metrics.tokenize). The baselines are
what MedEvalKit-style evaluation runs: nltk `sentence_bleu` once per order, rouge-score's
`RougeScorer(["rougeL"])` (whitespace tokenizer so tokens match), pycocoevalcap's `Cider`.
Prints the CPU time of each metric on each side, the speed ratios (and medmo's
`report_metrics`, all three at once, against the three references together), and the
largest absolute difference between the values (must be < 1e-9).
"""
from __future__ import annotations

import argparse
import random
import time
import warnings

from medmo.eval import metrics as M

SENTENCES = [
    "the heart size is normal", "the cardiomediastinal silhouette is within normal limits",
    "there is no focal consolidation", "no pleural effusion or pneumothorax is seen",
    "mild bibasilar atelectasis", "there is a small left pleural effusion",
    "the lungs are clear", "moderate cardiomegaly is unchanged", "no acute osseous abnormality",
    "there is mild pulmonary vascular congestion", "a right internal jugular catheter terminates in the svc",
    "possible early pneumonia in the right lower lobe", "degenerative changes of the thoracic spine",
    "no evidence of pulmonary edema", "stable appearance of the chest compared to prior",
]


def synthetic_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Findings/impression-shaped reports of 5-12 sentences; hypotheses share about half."""
    rng = random.Random(seed)

    def report():
        k = rng.randint(5, 12)
        findings = ". ".join(rng.choice(SENTENCES) for _ in range(k)).capitalize() + "."
        return f"Findings: {findings} Impression: {rng.choice(SENTENCES).capitalize()}."

    refs = [report() for _ in range(n)]
    hyps = []
    for r in refs:
        parts = r.split(". ")
        hyps.append(". ".join(p if rng.random() < 0.5 else rng.choice(SENTENCES) for p in parts))
    return refs, hyps


def reference_impls():
    """name -> fn(refs, hyps) -> dict, the maintained implementations on medmo's tokens."""
    from nltk.translate.bleu_score import sentence_bleu
    from pycocoevalcap.cider.cider import Cider
    from rouge_score import rouge_scorer

    class Whitespace:
        def tokenize(self, text):
            return text.split()

    def bleu(refs, hyps):
        sums = [0.0] * 4
        for ref, hyp in zip(refs, hyps):
            r, h = M.tokenize(ref), M.tokenize(hyp)
            for n in range(1, 5):
                sums[n - 1] += sentence_bleu([r], h, weights=[1 / n] * n)
        return {f"bleu{n}": s / len(refs) for n, s in enumerate(sums, 1)}

    def rouge(refs, hyps):
        scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=Whitespace())
        total = sum(scorer.score(" ".join(M.tokenize(r)), " ".join(M.tokenize(h)))["rougeL"].fmeasure for r, h in zip(refs, hyps))
        return {"rouge_l": total / len(refs)}

    def cider(refs, hyps):
        gts = {i: [" ".join(M.tokenize(r))] for i, r in enumerate(refs)}
        res = {i: [" ".join(M.tokenize(h))] for i, h in enumerate(hyps)}
        return {"cider_d": float(Cider().compute_score(gts, res)[0])}

    return {"BLEU-1..4": bleu, "ROUGE-L": rouge, "CIDEr-D": cider}


def medmo_impls():
    return {
        "BLEU-1..4": M.bleu,
        "ROUGE-L": lambda r, h: {"rouge_l": M.rouge_l(r, h)},
        "CIDEr-D": lambda r, h: {"cider_d": M.cider_d(r, h)},
    }


def _timed(fn, refs, hyps):
    # CPU seconds of this process: the machine is shared, and wall time would charge other
    # people's load to whichever side ran while it peaked. Everything here is single-threaded.
    t0 = time.process_time()
    out = fn(refs, hyps)
    return out, time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="number of report pairs")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic reports")
    args = ap.parse_args()
    refs, hyps = synthetic_pairs(args.n, args.seed)
    n_tokens = sum(len(M.tokenize(r)) for r in refs) / len(refs)
    print(f"{args.n} report pairs, {n_tokens:.1f} tokens per reference on average")
    warnings.simplefilter("ignore")  # nltk warns on every zero n-gram overlap

    print(f"{'metric':<14} {'medmo s':>8} {'reference s':>12} {'speed-up':>9}   values (medmo / reference)   [CPU seconds]")
    total_ref = 0.0
    worst = 0.0
    ref_values: dict[str, float] = {}
    theirs_all = reference_impls()
    for name, fn in medmo_impls().items():
        ours, t_ours = _timed(fn, refs, hyps)
        theirs, t_ref = _timed(theirs_all[name], refs, hyps)
        total_ref += t_ref
        ref_values.update(theirs)
        worst = max([worst] + [abs(ours[k] - theirs[k]) for k in theirs])
        values = ", ".join(f"{k} {ours[k]:.9f} / {theirs[k]:.9f}" for k in theirs)
        print(f"{name:<14} {t_ours:>8.2f} {t_ref:>12.2f} {t_ref / t_ours:>8.1f}x   {values}")
    ours, t_all = _timed(M.report_metrics, refs, hyps)  # all three on one tokenization and one set of counts
    worst = max([worst] + [abs(ours[k] - v) for k, v in ref_values.items()])
    print(f"{'report_metrics':<14} {t_all:>8.2f} {total_ref:>12.2f} {total_ref / t_all:>8.1f}x   (BLEU-1..4 + ROUGE-L + CIDEr-D together)")
    print(f"max |medmo - reference| = {worst:.3g}  ({'EQUAL' if worst < 1e-9 else 'DIFFERENT'} to 1e-9)")


if __name__ == "__main__":
    main()
