"""Answer extraction and scoring for VQA and multiple-choice QA, in two named modes.

`score_record(task, answer, response, mode)` scores one model response against a
record's `answer` (DESIGN.md): task "vqa" ({"text", "closed"}) or "mcq" ({"choices",
"letter"}). `aggregate_qa(samples)` turns scored samples into accuracy, closed and open
accuracy (the paper's "closed/all"), parse failures and per-subgroup breakdowns.

Mode `strict` (the default, what medmo reports):
- `<think>…</think>` is removed; the final answer is the last `\\boxed{}`, else the last
  `<answer>…</answer>`, else what follows the last "answer is" / "Answer:" /
  "**Answer**:", else the whole text.
- yes/no questions are judged by the answer's LEADING yes/no word: "Yes, it is normal"
  is yes, "normal" is neither (a parse failure, scored wrong), "no" is never found
  inside "normal" or "nodule". A hedge is wrong: "yes or no", "yes/no", "no, yes",
  "either yes or no", "Yes. It may be no." have no polarity. Chinese SLAKE answers
  (是的/不是, 有/没有, 包含/不包含) are judged by the polarity of their first characters.
- multiple choice by letter in any common form ("B", "(B)", "B.", "B) text",
  "**Answer**: B", "\\boxed{B}", "Option B", "the correct answer is B"), a leading letter
  followed by an explanation ("B\\n\\nBecause ...", "B because ...", "(C) the left lung",
  "B, since ...") or, when no letter is given, by the one option whose text the answer
  contains. Several letters ("A, B", "A or B", "the answer is B or C", "B. It could
  also be C.") are a hedge: no letter, scored wrong.
- other closed questions (a small set: "left", "T2", "MRI") by normalized exact match
  of the answer, or of its first clause when an explanation follows ("Left, in the upper
  lobe"; not a list or a hedge: "MRI, CT, X-ray", "Left; it could be right").
- open questions by normalized exact match (lower case, no punctuation or articles),
  plus token precision/recall/F1 (as a multiset, in that order) and, when a judge is
  configured, the judge's verdict: the result carries "judge": {"question",
  "reference", "response"} and the runner sets "correct" from the verdict.
- an empty response scores 0 and is a parse failure; nothing raises.

Mode `medevalkit` reproduces the per-sample rule scoring of MedEvalKit
(alibaba-damo-academy/MedEvalKit, utils/utils.py and the per-benchmark cal_metrics), so
numbers can be compared with tables produced by it. Known MedEvalKit defects, and what
this mode does with each:
1. Open-question accuracy is divided by the open count twice (the final loop over the
   "open" metrics also divides "acc"). NOT reproduced: it is an aggregation slip, not a
   scoring rule, and the headline overall accuracy of MedEvalKit is unaffected.
2. SLAKE closed questions are counted twice with the LLM judge on (the rule-based closed
   count is kept and the judge's closed verdicts are added again). NOT reproduced: the
   judge is not rule scoring, and the double count gives accuracies above what the
   model earned.
3. PathVQA closed accuracy is reset to 0 with the judge on. NOT reproduced, same reason.
4. Token F1 is returned in the wrong order: calculate_f1 returns (f1, precision,
   recall) but callers unpack (precision, recall, f1), so its "f1" is recall, its
   "recall" is precision and its "precision" is F1. REPRODUCED in the returned
   "precision"/"recall"/"f1" fields, because that is what published open-VQA "F1"
   columns computed with it contain; strict mode returns them correctly.
5. yes/no by substring: correct when exactly one of "yes"/"no" occurs anywhere in the
   response and the reference occurs in it, so "normal" counts as "no" and "not
   sure, probably yes" counts as yes. REPRODUCED: it decides the published closed
   accuracies.
6. Empty answers crash ROUGE (and calculate_f1 returns a bare 0 that the caller cannot
   unpack). NOT reproduced: an empty answer scores 0 and the result carries
   "medevalkit_crash": True so a user sees where MedEvalKit would have stopped.
7. MMLU-Med crashes (its prompt builder formats an undefined `context`) and IU-Xray
   crashes. NOT reproduced: medmo scores MMLU-Med with MedEvalKit's multiple-choice
   rule (IU-Xray is a report benchmark, scored in medmo.eval.metrics).
The rules that ARE reproduced: MedEvalKit's answer extraction (last \\boxed{}, else
<answer> tags, then splitting on "answer is"/"answer:"/... patterns, no <think>
removal), exact match after removing "\\n" and "." for closed questions, exact match
without that clean-up for open questions, set-based whitespace-token F1, and its
multiple-choice rule: first "\\n\\n" paragraph or last paragraph's first sentence if it
is a bare letter, then the text before the first "." and after the last ":", and when
that is neither a letter nor an option, the option most similar to the whole answer by
difflib ratio (so an unparsable answer is silently guessed, never a parse failure).
For VQA-RAD and PathVQA MedEvalKit calls a question closed when its lower-cased
reference is yes/no (not by the dataset's answer_type); pass `closed_by="yes_no"` for
those. Elsewhere (SLAKE) it uses the dataset's answer_type and applies the substring
yes/no test only when the reference is literally "yes"/"no": SLAKE writes "Yes"/"No",
so its closed yes/no questions are in fact judged by exact match; reproduced.
Not reproduced: MedEvalKit formats options "A.text" for some benchmarks and "A. text"
for others, which only shifts its similarity guess; medmo always uses "A. text". Its
MMMU loader uses MMMU's own answer parser (which guesses at random when no letter is
found); medevalkit mode applies judge_multi_choice to MMMU-Med like the other
multiple-choice benchmarks, so MMMU-Med numbers may differ slightly from its tables.
"""
from __future__ import annotations

import difflib
import re
import string
from collections import Counter, defaultdict
from typing import Any, Iterable

from medmo.eval.options import MODES as MODES, check_mode  # MODES: one list, re-exported here

# Chinese yes/no-type answers in SLAKE by polarity; a response is judged by the polarity
# of its first characters (a negating prefix makes it "no").
_ZH_NEG_PREFIX = ("不", "没", "否", "无", "非")
_ZH_POS = {"是", "是的", "有", "包含", "可以", "对", "存在"}
_ZH_NEG = {"否", "不是", "没有", "不包含", "不可以", "不对", "不存在", "无"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = set(string.punctuation) | set("，。、；：？！“”‘’（）《》")
_TOKEN_RE = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]")
_ANSWER_RE = re.compile(
    r"(?:final\s+)?answer\s*[*_]*\s*(?:is|:|：)\s*[*_]*\s*:?|答案\s*(?:是|:|：)", re.IGNORECASE
)
_MEK_PATTERNS = ("**answer**:", "**answer**", "*answer*:", "**answer:**", "answer is", "answer:", "答案:", "final answer", "final answer is")


# ---------------------------------------------------------------- extraction
def boxed_content(text: str) -> str | None:
    """Content of the last \\boxed{...} (nested braces matched), or None."""
    found = _boxed(text)
    return found[0] if found else None


def _boxed(text: str) -> tuple[str, int] | None:
    """(content of the last \\boxed{...}, the index after its closing brace), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return re.sub(r"\\text\{([^{}]*)\}", r"\1", text[i:j]), j + 1
    return None


def tag_content(text: str, tag: str) -> str | None:
    """Content of the last <tag>...</tag> (or of an unclosed last <tag>), or None."""
    closed = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.S)
    if closed:
        return closed[-1]
    if f"<{tag}>" in text:
        return text.rsplit(f"<{tag}>", 1)[1]
    return None


def strip_think(text: str) -> str:
    """Remove <think> blocks; a response that only closes one keeps what follows it."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.S)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    elif "<think>" in text:  # never closed: the whole rest is reasoning
        text = text.split("<think>", 1)[0]
    return text.strip()


def extract_final(response: str | None) -> str:
    """The strict mode's final answer text (see the module docstring)."""
    return _final_and_after(strip_think(response or ""))[0]


def _final_and_after(text: str) -> tuple[str, str]:
    """(the final answer, what the text says after it: "Answer: B\\n\\nPossibly C" -> "\\n\\nPossibly C")."""
    boxed = _boxed(text)
    if boxed and boxed[0].strip():
        return boxed[0].strip(), text[boxed[1]:]
    tags = list(re.finditer(r"<answer>(.*?)</answer>", text, flags=re.S))
    if tags and tags[-1].group(1).strip():
        return tags[-1].group(1).strip(), text[tags[-1].end():]
    if not tags and "<answer>" in text and text.rsplit("<answer>", 1)[1].strip():  # never closed
        return text.rsplit("<answer>", 1)[1].strip(), ""
    matches = list(_ANSWER_RE.finditer(text))
    if matches:
        rest = text[matches[-1].end():].strip()
        line = rest.split("\n", 1)[0].strip()
        if line:
            return line, rest[len(line):]
    return text, ""


def normalize(text: str) -> str:
    """Lower case, punctuation and markdown removed, articles dropped, spaces collapsed."""
    text = "".join(" " if c in _PUNCT else c for c in text.lower())
    return " ".join(w for w in text.split() if w not in _ARTICLES)


def tokens(text: str) -> list[str]:
    """Word tokens (latin/digits) and single CJK characters, lower case, no articles."""
    return [t for t in _TOKEN_RE.findall(text.lower()) if t not in _ARTICLES]


def token_prf(prediction: str, reference: str) -> tuple[float, float, float]:
    """(precision, recall, f1) over token multisets; 0s when either side is empty."""
    pred, ref = tokens(prediction), tokens(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or common == 0:
        return 0.0, 0.0, 0.0
    p, r = common / len(pred), common / len(ref)
    return p, r, 2 * p * r / (p + r)


# ---------------------------------------------------------------- strict mode
def yes_no_polarity(text: str) -> str | None:
    """'yes'/'no' from the LEADING word of an answer (or first characters for Chinese)."""
    t = text.strip().lstrip("*_`\"'([ ").lower()
    if not t:
        return None
    if "\u4e00" <= t[0] <= "\u9fff":
        if t.startswith(_ZH_NEG_PREFIX):
            return "no"
        return "yes" if any(t.startswith(p) for p in _ZH_POS) else None
    m = re.match(r"[a-z]+", t)
    word = m.group(0) if m else ""
    if word not in ("yes", "no"):
        return None
    rest, opposite = t[m.end():], "no" if word == "yes" else "yes"
    other = _YES_NO_HEDGE.match(rest)
    later = any(re.search(rf"\b{opposite}\b(?=\s*[.,;!?)]|\s*$)", x) for x in _hedging_sentences(rest))
    return None if (other and other.group(1) != word) or later else word


def reference_polarity(reference: str) -> str | None:
    """'yes'/'no' when the reference is a yes/no answer (English or SLAKE Chinese)."""
    ref = reference.strip().rstrip(".。").strip().lower()
    if ref in ("yes", "no"):
        return ref
    if ref in _ZH_POS or ref in _ZH_NEG:
        return "no" if ref in _ZH_NEG else "yes"
    return None


# A hedge: "yes or no", "yes/no", "no, yes", "Yes. No."; a comma, period or space only when the
# other word ends the answer, so "Yes, no abnormality is seen" stays "yes".
_YES_NO_HEDGE = re.compile(r"^\s*(?:(?:,\s*)?(?:or|and)\s+|[/|&]\s*|[,.;!?]*\s*(?=(?:yes|no)\s*[.!?]*\s*$))"
                           r"(?:(?:maybe|possibly|perhaps|probably)\s+)?(yes|no)\b")
_LETTER_ALONE = re.compile(r"^[(\[]?([A-Za-z])[)\]]?[.:)]?$")
# A leading letter: "B", "(B) text", "B) text", "B. text", "B: text", "B, because", "B\n\nBecause",
# "B because ..." (a bare letter then a space counts only before one of these words, so the
# article in "A nodule is seen" is not read as option A).
_LETTER_HEAD = re.compile(r"[(\[]?([A-Za-z])([)\]])?")
_LEAD_CONNECTOR = re.compile(
    r"\s+(?:because|since|as|is|was|would|should|seems|due|given|which|option|[-\u2013\u2014(])", re.I)
# Several letters: "A, B", "A or B", "A/B", "(A) and (B)", "B, or possibly C", "A. B.", "A\nB".
_LETTER_HEDGE = re.compile(r"^\s*(?:(?:,\s*)?(?:or|and)\s+|[,/|&]\s*)(?:(?:maybe|possibly|perhaps|probably|also)\s+)?"
                           r"(?:option\s+)?[(\[]?([A-Z])(?![A-Za-z])"
                           r"|^[)\]]?\.[ \t]+[(\[]?([A-Z])(?:[)\]]|\.(?:\s|$)|\s*$)"
                           r"|^[.:)\]*_ \t]*\n\s*[*_]*[(\[]?([A-Z])[)\].:*_]*[ \t]*(?:\n|$)")
# A hedge written as a sentence after the answer: a hedging word and another answer in one sentence
# ("B. It could also be C.", "Yes. It may be no.", "Left; right is possibly involved").
_HEDGE_WORD = re.compile(r"\b(?:could|might|may|maybe|possibly|perhaps|alternatively|either)\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_OTHER_LETTER = re.compile(r"(?<![A-Za-z])(?:\(([A-Z])\)|[Oo]ption\s+([A-Z])\b|([A-Z])(?=[).,;:!?]|\s*$|"
                           r"\s+(?:is|was|would|could|might|may|seems|also|too|as)\b))")
# After a comma, an explanation opens with one of these ("Left, in the upper lobe"); anything
# else is read as another answer ("MRI, CT, X-ray").
_EXPLAINS = re.compile(r"\s*(?:because|since|as|which|that|with|without|in|on|at|of|from|there|it|this|the|a|an|"
                       r"seen|located|showing|shown|suggesting|consistent|due|given)\b", re.I)


def _hedging_sentences(rest: str) -> list[str]:
    return [x for x in _SENTENCE.split(rest) if _HEDGE_WORD.search(x)]


_LETTER_NAMED = re.compile(r"\b(?:option|choice|answer|letter)\s*(?:is\s*)?[:：]?\s*[(\[]?([A-Za-z])\b[)\]]?", re.I)
_LETTER_IS = re.compile(r"\b(?:is|be)\s*:?\s*[(\[]?([A-Z])[)\]]?(?=[\s.,;:)]|$)")


def _hedged(rest: str, letter: str, choices: dict[str, str]) -> bool:
    """Whether `rest`, the text right after a chosen letter, names another option ("or C") rather
    than the chosen option's own text (MedQA has options whose text is a letter: "A. B")."""
    option = normalize({k.upper(): v for k, v in choices.items()}.get(letter) or "")
    if option and normalize(rest).startswith(option):
        return False
    letters = {k.upper() for k in choices}
    m = _LETTER_HEDGE.match(rest)
    other = m and (m.group(1) or m.group(2) or m.group(3))
    if other and other in letters and other != letter:
        return True
    named = {g for x in _hedging_sentences(rest) for m in _OTHER_LETTER.finditer(x) for g in m.groups() if g}
    return bool(named & (letters - {letter}))


def _leading_letter(t: str, choices: dict[str, str]) -> tuple[str | None, str]:
    """(the letter an answer opens with, the text after it), or (None, "") when it opens otherwise."""
    m = _LETTER_HEAD.match(t)
    if not m:
        return None, ""
    letter, closer = m.group(1), m.group(2)
    rest = t[m.end():].lstrip("*_`\"'")
    if not rest or closer or re.match(r"[.:,;!]+(?:\s|\*|$)|[.:,;!]*\s*\n", rest):
        ok = letter.isupper() or closer or not rest.strip(".:,;! ")
    else:
        option = normalize(choices.get(letter.upper(), "") or "")
        ok = letter.isupper() and (bool(_LEAD_CONNECTOR.match(rest)) or bool(option) and
                                   normalize(rest).startswith(option) or bool(_LETTER_HEDGE.match(rest)))
    return (letter.upper(), rest) if ok else (None, "")


def parse_choice(text: str, choices: dict[str, str]) -> str | None:
    """The chosen letter (a key of `choices`) or None; see the module docstring."""
    letters = {k.upper() for k in choices}
    t = text.strip().strip("*_`\"' ").strip()
    if not t:
        return None

    def ok(found: Iterable[str]) -> str | None:
        found = {f.upper() for f in found} & letters
        return found.pop() if len(found) == 1 else None

    m = _LETTER_ALONE.match(t)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    letter, rest = _leading_letter(t.lstrip("*_`\"' "), choices)
    if letter in letters:
        return None if _hedged(rest, letter, choices) else letter
    for rx in (_LETTER_NAMED, _LETTER_IS):
        found = [(m.group(1).upper(), t[m.end():]) for m in rx.finditer(t)]
        letter = ok(f for f, _ in found)
        if letter:
            return None if any(_hedged(r, f, choices) for f, r in found) else letter
    # the whole answer is one option's text, symbols kept ("Rh-ve" is not "Rh+ve")
    light = " ".join(t.lower().rstrip(".").split())
    exact = [k for k, v in choices.items() if " ".join(v.lower().rstrip(".").split()) == light]
    if len(exact) == 1:
        return exact[0].upper()
    norm = f" {normalize(t)} "
    hits = [k for k, v in choices.items() if normalize(v) and f" {normalize(v)} " in norm]
    # an option whose text is inside another matched option ("pneumonia" within
    # "viral pneumonia") does not count as a second match
    hits = [k for k in hits if not any(k != o and normalize(choices[k]) in normalize(choices[o]) for o in hits)]
    return hits[0].upper() if len(hits) == 1 else None


def _score_strict(task: str, answer: dict, response: str, question: str) -> dict[str, Any]:
    text = strip_think(response)
    final, after = _final_and_after(text)
    if task == "mcq":
        choices = answer.get("choices") or {}
        letter = parse_choice(final, choices)
        if letter is not None and after and _hedged(after, letter, choices):
            letter = None  # a hedge after the extracted answer ("The answer is B. Possibly C.")
        elif letter is None and final != text:
            letter = parse_choice(text, choices)
        return {"parsed": letter, "correct": letter is not None and letter == str(answer.get("letter", "")).upper()}
    reference = str(answer.get("text", ""))
    polarity = reference_polarity(reference)
    if answer.get("closed") and polarity is not None:
        got = yes_no_polarity(final)
        if got is not None and after and yes_no_polarity(final + after) is None:
            got = None  # a hedge after the extracted answer ("The answer is yes. It may be no.")
        return {"parsed": got, "correct": got == polarity, "closed": True}
    if answer.get("closed"):
        ref = normalize(reference)
        head, sep, rest = (re.split(r"([,.;\n，。])", final, maxsplit=1) + ["", ""])[:3]
        # "left, right", "Left. Right." or "Left; it could be right" is a hedge, not "left" with an
        # explanation after it: the first clause counts only before a real explanation
        explained = _EXPLAINS.match(rest) if sep in ",，" else len(rest.split()) >= 3
        first = normalize(head) if explained and not _hedging_sentences(rest) else ""
        parsed = normalize(final) or None
        return {"parsed": parsed, "correct": bool(ref) and ref in (normalize(final), first), "closed": True}
    p, r, f1 = token_prf(final, reference)
    exact = bool(normalize(final)) and normalize(final) == normalize(reference)
    out = {"parsed": final or None, "correct": exact, "closed": False, "precision": p, "recall": r, "f1": f1}
    if final and not exact:
        out["judge"] = {"question": question, "reference": reference, "response": final}
    return out


# ---------------------------------------------------------------- medevalkit mode
def _mek_extract(response: str) -> str:
    """MedEvalKit's pre-extraction in cal_metrics: last \\boxed{}, else <answer> tags."""
    boxed = boxed_content(response)
    if boxed is not None:
        return boxed
    if "<answer>" in response:
        return " ".join(re.findall(r"<answer>(.*?)</answer>", response, flags=re.S)).strip() or response
    return response


def _mek_parse(response: str) -> str:
    """MedEvalKit's parse_response: lower case, extraction, then split on answer patterns."""
    response = response.lower()
    if "boxed" in response:  # its extractor returns the string "None" when no box closes
        boxed = boxed_content(response)
        response = "None" if boxed is None else boxed
    else:
        response = _mek_extract(response)
    for pattern in _MEK_PATTERNS:
        if pattern in response:
            response = response.split(pattern)[-1]
    return response


def _mek_multi_choice(choices: dict[str, str], response: str) -> str:
    """The letter MedEvalKit's judge_multi_choice lands on (its correct = this == letter)."""
    alphas = [chr(ord("a") + i) for i in range(len(choices))]
    options = [f"{k}. {v}".lower() for k, v in choices.items()]
    response = response.lower()
    paragraphs = response.split("\n\n")
    if paragraphs[0] in alphas:
        response = paragraphs[0]
    elif paragraphs[-1].split(".")[0] in alphas:
        response = paragraphs[-1].split(".")[0]
    response = _mek_parse(response).strip().replace("\n", "")
    head = response.split(".")[0].split(":")[-1]
    if head in alphas:
        return head.upper()
    if head in options:
        return alphas[options.index(head)].upper()
    if not options:
        return ""
    ratios = [difflib.SequenceMatcher(None, o, response).ratio() for o in options]
    return alphas[max(range(len(options)), key=lambda i: (ratios[i], -i))].upper()


def _score_medevalkit(task: str, answer: dict, response: str, question: str, closed_by: str) -> dict[str, Any]:
    if task == "mcq":
        text = " ".join(re.findall(r"<answer>(.*?)</answer>", response, flags=re.S)).strip() or response
        letter = _mek_multi_choice(answer.get("choices") or {}, text)
        return {"parsed": letter, "correct": letter == str(answer.get("letter", "")).upper()}
    raw_reference = str(answer.get("text", ""))
    reference = raw_reference.lower()
    if closed_by == "yes_no":  # VQA-RAD, PathVQA: lower-cased reference decides
        is_yes_no = closed = reference.strip() in ("yes", "no")
    else:  # SLAKE: answer_type decides; the substring test only for a literal "yes"/"no"
        is_yes_no, closed = raw_reference in ("yes", "no"), bool(answer.get("closed"))
    parsed = _mek_parse(_mek_extract(response).lower().strip())
    if closed:
        cleaned = parsed.replace("\n", "").replace(".", "")
        if is_yes_no:
            correct = (("yes" in cleaned) ^ ("no" in cleaned)) and reference.strip() in cleaned
        else:
            correct = cleaned == reference
        return {"parsed": cleaned, "correct": bool(correct), "closed": True}
    out: dict[str, Any] = {"parsed": parsed, "correct": parsed == reference, "closed": False}
    pred_set, ref_set = set(parsed.split()), set(reference.split())
    common = len(pred_set & ref_set)
    if not pred_set or not ref_set:
        out.update(precision=0.0, recall=0.0, f1=0.0, medevalkit_crash=True)
    else:
        p, r = common / len(pred_set), common / len(ref_set)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        # MedEvalKit returns (f1, precision, recall) and unpacks (precision, recall, f1)
        out.update(precision=f1, recall=p, f1=r)
    out["judge"] = {"question": question, "reference": str(answer.get("text", "")), "response": response}
    return out


# ---------------------------------------------------------------- entry points
def score_record(task: str, answer: dict, response: str | None, mode: str = "strict", *,
                 question: str | None = None, closed_by: str = "answer") -> dict[str, Any]:
    """Score one response. Returns "parsed" (None = nothing could be extracted),
    "correct" (bool), for VQA "closed" (how the question was counted), for open answers
    "precision"/"recall"/"f1" and, when a judge should decide, "judge".

    `closed_by` ("answer" or "yes_no") only matters in medevalkit mode: "yes_no" counts
    a question as closed when its reference is yes/no, as MedEvalKit does for VQA-RAD
    and PathVQA.

    >>> score_record("vqa", {"text": "no", "closed": True}, "Normal.")["correct"]
    False
    >>> score_record("vqa", {"text": "no", "closed": True}, "Normal.", mode="medevalkit")["correct"]
    True
    """
    check_mode(mode)
    if task not in ("vqa", "mcq"):
        raise ValueError(f"score_record scores tasks 'vqa' and 'mcq', not {task!r}")
    if closed_by not in ("answer", "yes_no"):
        raise ValueError(f"closed_by must be 'answer' or 'yes_no', not {closed_by!r}")
    response = response if isinstance(response, str) else ""
    question = question if question is not None else str(answer.get("question", ""))
    if mode == "strict":
        return _score_strict(task, answer, response, question)
    return _score_medevalkit(task, answer, response, question, closed_by)


def _accuracy(samples: list[dict]) -> float | None:
    return sum(bool(s.get("correct")) for s in samples) / len(samples) if samples else None


def _is_closed(sample: dict) -> bool | None:
    if sample.get("closed") is not None:
        return bool(sample["closed"])
    answer = sample.get("answer") or {}
    return bool(answer["closed"]) if "closed" in answer else None


def aggregate_qa(samples: list[dict], groups: Iterable[str] = ()) -> dict[str, Any]:
    """Accuracy over scored samples: overall, closed and open (VQA), parse failures,
    mean open-answer recall/F1, and one breakdown per meta key in `groups`
    ({"by_subject": {"anatomy": {"n", "accuracy"}, ...}})."""
    out: dict[str, Any] = {"n": len(samples), "accuracy": _accuracy(samples)}
    closed = [s for s in samples if _is_closed(s) is True]
    opened = [s for s in samples if _is_closed(s) is False]
    if closed or opened:
        out.update(n_closed=len(closed), n_open=len(opened),
                   closed_accuracy=_accuracy(closed), open_accuracy=_accuracy(opened))
        scored = [s for s in opened if "f1" in s]
        if scored:
            out["open_recall"] = sum(s["recall"] for s in scored) / len(scored)
            out["open_f1"] = sum(s["f1"] for s in scored) / len(scored)
    out["parse_failures"] = sum(s.get("parsed") in (None, "") for s in samples)
    for key in groups:
        buckets: dict[str, list[dict]] = defaultdict(list)
        for s in samples:
            buckets[str((s.get("meta") or {}).get(key, "unknown"))].append(s)
        out[f"by_{key}"] = {k: {"n": len(v), "accuracy": _accuracy(v)} for k, v in sorted(buckets.items())}
    return out
