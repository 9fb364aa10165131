"""A rule-based, negation- and uncertainty-aware labeler for the 14 CheXpert observations.

`label_report(text) -> {observation: 1 | 0 | -1}`: 1 positive, 0 negative, -1 uncertain;
observations the report does not mention are absent. Pure, table-driven, no model.

How it works (the CheXpert labeler's three steps, much simplified):
1. Mentions: each observation has a table of phrases (MENTIONS) found with word-bounded
   regular expressions in each sentence; attribute phrases (ATTRIBUTES: "heart size",
   "cardiomediastinal silhouette") count only with an enlargement or a normality word.
2. Classification of a mention, in this order:
   uncertain if an uncertainty cue precedes it in its clause ("possible", "may", "concern
   for", "cannot exclude", ...) or follows it ("... cannot be excluded", "... is possible");
   negative if a negation cue precedes it in its clause ("no", "without", "negative for",
   "free of", "no evidence of", ... — the scope runs over lists: "no effusion or
   pneumothorax") or follows it ("... is not seen", "... has resolved"), or a normality
   phrase describes it ("heart size is normal", "normal cardiomediastinal silhouette");
   positive otherwise. "No change in X" (and "no interval increase of X", ...) is not a
   negation of X: a persisting finding is positive. A clause ends at ".", ";", "," + "but/however/although/...".
3. Aggregation per observation: positive if any mention is positive, else uncertain if
   any is uncertain, else negative (CheXpert's rule). "No Finding" is 1 when the report
   mentions something and no pathology (everything but Support Devices) is 1 or -1; with
   `stated_only` (the GRPO factuality reward) only when a normal study is stated.

This is NOT CheXbert and not the Stanford CheXpert labeler (no dependency parse, no
NegBio patterns); it is an approximation for rewards (GRPO factuality) and for a
"rule CheXpert F1" report metric, named so in results. Published CheXbert F1 numbers
need the CheXbert model (see medmo.eval.model_metrics).
"""
from __future__ import annotations

import re
from typing import Sequence

OBSERVATIONS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
# The five observations most report-generation papers report F1 on (CheXpert competition set).
FIVE = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

MENTIONS: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": (
        r"(?:enlarged|widened|widening of the) (?:cardio)?mediastin\w*", r"mediastinal (?:widening|enlargement)",
    ),
    "Cardiomegaly": (
        r"cardiomegaly", r"(?:enlarged|enlargement of the) (?:heart|cardiac silhouette)", r"cardiac enlargement",
        r"(?:heart|cardiac silhouette) is enlarged",
    ),
    "Lung Opacity": (r"opacit(?:y|ies)", r"opacification", r"infiltrates?", r"airspace disease", r"haziness", r"hazy"),
    "Lung Lesion": (r"nodules?", r"nodular", r"mass(?:es)?", r"lesions?", r"tumou?rs?", r"neoplasms?", r"metasta\w+"),
    "Edema": (r"edema", r"(?:pulmonary |vascular )+congestion", r"heart failure", r"chf"),
    "Consolidation": (r"consolidation", r"consolidative", r"consolidated"),
    "Pneumonia": (r"pneumonias?", r"infectious process", r"infection"),
    "Atelectasis": (r"atelecta\w+", r"collapse"),
    "Pneumothorax": (r"pneumothora(?:x|ces)", r"hydropneumothorax"),
    "Pleural Effusion": (r"(?<!pericardial )(?:pleural )?effusions?", r"pleural fluid", r"hydrothorax", r"blunting of the \w+ costophrenic"),
    "Pleural Other": (r"pleural thickening", r"pleural plaques?", r"pleural scarring", r"fibrothorax"),
    "Fracture": (r"fractures?", r"fractured"),
    "Support Devices": (
        r"(?:endotracheal|et|enteric|feeding|chest|nasogastric|ng|og|tracheostomy) tubes?", r"tubes?", r"catheters?",
        r"(?:central venous|central|picc|midline|port) lines?", r"picc", r"pacemaker", r"pacer", r"icd",
        r"(?:pacer|pacing|sternotomy) wires?", r"stents?", r"port-a-cath", r"(?:support )?devices?", r"drains?",
        r"valve replacement",
    ),
}
# Attribute mentions ("heart size") say nothing by themselves: positive only with an
# enlargement word next to them, negative with a normality or negation phrase.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": (r"cardiomediastinal (?:silhouette|contours?)", r"mediastinal (?:silhouette|contours?)", r"mediastinum"),
    "Cardiomegaly": (r"heart size", r"cardiac size", r"cardiac silhouette", r"heart"),
}
ENLARGED = r"enlarg\w*|widen\w*|increased|large|prominent"

NEG_PRE = (
    r"no", r"not", r"without", r"negative for", r"free of", r"clear of", r"absence of", r"absent",
    r"no (?:new |definite |evidence of |signs? of |radiographic evidence of )+", r"resolution of", r"rule out",
    r"ruled out", r"resolved", r"removal of", r"removed", r"neither", r"nor",
)
NEG_POST = (
    r"(?:is|are|was|were)? ?(?:not|no longer) (?:seen|identified|present|appreciated|visualized|demonstrated|evident|noted|enlarged)",
    r"(?:is|are|has|have)? ?(?:been )?(?:resolved|absent|removed)", r"(?:is|are) negative",
)
NORMAL_PRE = (r"normal", r"unremarkable")
NORMAL_POST = (r"(?:is|are|appears?|remains?|looks?)? ?(?:\w+ )?(?:normal|unremarkable|within normal limits|top[- ]normal|not enlarged)",)
UNC_PRE = (
    r"possible", r"possibly", r"may", r"might", r"could", r"probable", r"probably", r"likely", r"questionable",
    r"suspicious for", r"suspected", r"suggest\w*", r"concern\w* for", r"cannot (?:be )?(?:excluded|ruled out)",
    r"can ?not exclude", r"cannot rule out", r"not (?:be )?excluded", r"versus", r"vs", r"borderline",
    r"equivocal", r"differential", r"indeterminate", r"question of", r"consider\w*", r"presumed",
)
UNC_POST = (
    r"(?:is|are)? ?(?:not |cannot be )(?:excluded|ruled out)", r"versus", r"vs", r"(?:is|are) (?:possible|likely|suspected|questioned)",
    r"(?:is|are)? ?not (?:completely |entirely )?excluded", r"\?",
)
# "No change in X", "no interval increase of X": X persists, so the "no" negates the change,
# not the finding; these phrases are removed before the negation cues are looked for.
PERSIST = (r"(?:no|without)\s+(?:(?:significant|interval|appreciable|substantial|definite|further|marked|"
           r"relevant)\s+)*(?:change|increase|progression|worsening|decrease)s?\s+(?:in|of)",)
# A stated normal study: what "No Finding" needs when only stated observations count (rewards).
NORMAL_STUDY = (
    r"no (?:acute |active |significant |focal )*(?:cardiopulmonary |intrathoracic |pulmonary |chest )*"
    r"(?:process|abnormalit(?:y|ies)|disease|findings?|pathology)",
    r"(?:lungs?|lung fields) (?:are |is |remain |appear )?(?:grossly )?clear", r"clear lungs",
    r"normal (?:chest|study|examination|exam|radiograph|chest radiograph|chest x-?ray)",
    r"(?:chest|study|examination|exam|radiograph) (?:is |appears )?(?:normal|unremarkable)",
)
# Words that end a negation/uncertainty scope inside a sentence.
SCOPE_BREAK = r"\b(?:but|however|although|though|except|which|aside from|apart from|otherwise|whereas|while|there (?:is|are))\b"

_WORD = lambda pats: re.compile(r"(?<![\w-])(?:" + "|".join(pats) + r")(?![\w-])")  # noqa: E731
_MENTION_RE = {obs: _WORD(pats) for obs, pats in MENTIONS.items()}
_ATTRIBUTE_RE = {obs: _WORD(pats) for obs, pats in ATTRIBUTES.items()}
_ENLARGED_PRE_RE = re.compile(r"(?<!\w)(?:" + ENLARGED + r")\W+(?:\w+\W+){0,1}$")
_ENLARGED_POST_RE = re.compile(r"^\W*(?:(?:is|are|appears?|remains?|looks?|mildly|moderately|severely|slightly|markedly|now|again|still)\W+){0,3}(?:" + ENLARGED + r")")
_NEG_PRE_RE, _UNC_PRE_RE, _NORMAL_PRE_RE = _WORD(NEG_PRE), _WORD(UNC_PRE), re.compile(r"(?<!\w)(?:" + "|".join(NORMAL_PRE) + r")\W+(?:\w+\W+){0,2}$")
_NEG_POST_RE = re.compile(r"^\W*(?:" + "|".join(NEG_POST) + r")(?!\w)")
_NORMAL_POST_RE = re.compile(r"^\W*(?:" + "|".join(NORMAL_POST) + r")(?!\w)")
_UNC_POST_RE = re.compile(r"^\W*(?:\w+\W+){0,2}?(?:" + "|".join(UNC_POST) + r")")
_PERSIST_RE = _WORD(PERSIST)
_NORMAL_STUDY_RE = _WORD(NORMAL_STUDY)
_SENTENCE_RE = re.compile(r"(?<=[.;!?])\s+|\n+")
_CLAUSE_RE = re.compile(SCOPE_BREAK)


def _classify(clause: str, start: int, end: int, attribute: bool = False) -> int | None:
    before, after = _PERSIST_RE.sub(" ", clause[:start]), clause[end:]
    if attribute and not (_ENLARGED_PRE_RE.search(before) or _ENLARGED_POST_RE.match(after)):
        normal = _NORMAL_PRE_RE.search(before) or _NORMAL_POST_RE.match(after) or _NEG_POST_RE.match(after)
        return 0 if normal else None
    if _UNC_PRE_RE.search(before) or _UNC_POST_RE.match(after):
        return -1
    if _NEG_PRE_RE.search(before) or _NEG_POST_RE.match(after):
        return 0
    if _NORMAL_PRE_RE.search(before) or _NORMAL_POST_RE.match(after):
        return 0
    return 1


def _clauses(text: str):
    for sentence in _SENTENCE_RE.split(text):
        yield from (c for c in _CLAUSE_RE.split(sentence.lower()) if c.strip())


def label_report(text: str | None, stated_only: bool = False) -> dict[str, int]:
    """{observation: 1 | 0 | -1} for the observations the report mentions (see module doc).

    `stated_only` (rewards): "No Finding" only when the text states a normal study ("no acute
    cardiopulmonary process", "lungs are clear"), not whenever no pathology word occurs, so
    text that states nothing ("asdf", "x", "No change.") has no labels at all.

    >>> label_report("asdf qwerty"), label_report("asdf qwerty", stated_only=True)
    ({'No Finding': 1}, {})
    >>> label_report("No change in the left pleural effusion.")
    {'Pleural Effusion': 1}
    """
    labels: dict[str, int] = {}
    if not text or not text.strip():
        return labels
    rank = {1: 2, -1: 1, 0: 0}  # positive beats uncertain beats negative
    for clause in _clauses(text):
        taken: list[tuple[int, int]] = []
        tables = [(o, p, False) for o, p in _MENTION_RE.items()] + [(o, p, True) for o, p in _ATTRIBUTE_RE.items()]
        for obs, pattern, attribute in tables:
            for m in pattern.finditer(clause):
                # a span already claimed by an earlier mention is not counted twice
                if any(m.start() < e and s < m.end() for s, e in taken):
                    continue
                taken.append(m.span())
                value = _classify(clause, m.start(), m.end(), attribute)
                if value is None:
                    continue
                if obs not in labels or rank[value] > rank[labels[obs]]:
                    labels[obs] = value
    pathologies = [o for o in OBSERVATIONS if o not in ("No Finding", "Support Devices")]
    stated = not stated_only or _NORMAL_STUDY_RE.search(" ".join(text.lower().split()))
    if stated and not any(labels.get(o) in (1, -1) for o in pathologies):
        labels["No Finding"] = 1
    return {o: labels[o] for o in OBSERVATIONS if o in labels}


def positives(labels: dict[str, int], uncertain_as_positive: bool = False) -> set[str]:
    ok = (1, -1) if uncertain_as_positive else (1,)
    return {o for o, v in labels.items() if v in ok}


def label_f1(reference: str, hypothesis: str, observations: Sequence[str] = OBSERVATIONS) -> float:
    """F1 between the positive observations of two reports; 1.0 when both have none (a reward term)."""
    ref = positives(label_report(reference)) & set(observations)
    hyp = positives(label_report(hypothesis)) & set(observations)
    if not ref and not hyp:
        return 1.0
    return 2 * len(ref & hyp) / (len(ref) + len(hyp))


def rule_chexpert_f1(refs: Sequence[str], hyps: Sequence[str], uncertain_as_positive: bool = False) -> dict[str, float]:
    """Rule-labeler CheXpert F1 over a corpus (positive = 1; uncertain counts as negative unless asked).

    Keys: rule_chexpert_f1_micro14 / _macro14 (all 14 observations) and _micro5 (FIVE).
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses; they must pair up one to one")
    tp = {o: 0 for o in OBSERVATIONS}
    fp, fn = dict(tp), dict(tp)
    for r, h in zip(refs, hyps):
        ref, hyp = positives(label_report(r), uncertain_as_positive), positives(label_report(h), uncertain_as_positive)
        for o in OBSERVATIONS:
            tp[o] += o in ref and o in hyp
            fp[o] += o in hyp and o not in ref
            fn[o] += o in ref and o not in hyp

    def f1(obs: Sequence[str]) -> float:
        t, p, n = (sum(d[o] for o in obs) for d in (tp, fp, fn))
        return 2 * t / (2 * t + p + n) if t + p + n else 0.0

    return {
        "rule_chexpert_f1_micro14": f1(OBSERVATIONS),
        "rule_chexpert_f1_macro14": sum(f1([o]) for o in OBSERVATIONS) / len(OBSERVATIONS),
        "rule_chexpert_f1_micro5": f1(FIVE),
    }
