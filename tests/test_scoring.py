"""medmo.eval.scoring: hand-made responses for every QA family, in both modes.

Each table row is (answer, response, expected parsed, expected correct) with a comment
saying what the case shows. The DEFECT rows are MedEvalKit's known defects: the same
response scored by strict and medevalkit with different results.
"""
from __future__ import annotations

import pytest

from medmo.eval.scoring import (MODES, aggregate_qa, boxed_content, extract_final, score_record, strip_think,
                                token_prf)

YES = {"text": "yes", "closed": True}
NO = {"text": "no", "closed": True}
LEFT = {"text": "Left", "closed": True}
OPEN = {"text": "right lower lobe", "closed": False}
RH = {"choices": {"A": "O group and Rh+ve", "B": "O group and Rh-ve", "C": "AB group and Rh+ve"}, "letter": "B"}
MCQ = {"choices": {"A": "Pneumonia", "B": "Viral pneumonia", "C": "Pulmonary edema", "D": "Normal"}, "letter": "B"}

STRICT = [
    # --- yes/no: the answer's leading yes/no word decides
    ("vqa", NO, "no", "no", True),  # bare answer
    ("vqa", YES, "Yes, it is normal.", "yes", True),  # leading "Yes" wins over "normal"
    ("vqa", NO, "Normal.", None, False),  # DEFECT 5: "no" is not found inside "normal"
    ("vqa", NO, "Nodule in the right lung", None, False),  # nor inside "nodule"
    ("vqa", NO, "**No**", "no", True),  # markdown around the word
    ("vqa", YES, "The answer is yes.", "yes", True),  # "answer is" extraction
    ("vqa", YES, "<think>Could be no.</think>Yes", "yes", True),  # reasoning removed
    ("vqa", NO, "Reasoning...\n\\boxed{no}", "no", True),  # \boxed{} wins
    ("vqa", YES, "<answer>yes</answer>", "yes", True),  # <answer> tags
    ("vqa", YES, "", None, False),  # empty response: 0, no crash
    ("vqa", YES, None, None, False),  # missing response (None) behaves like empty
    ("vqa", {"text": "不是", "closed": True}, "不是的", "no", True),  # Chinese polarity
    ("vqa", {"text": "包含", "closed": True}, "不包含", "no", False),  # negated Chinese answer is wrong
    # --- closed, small answer set: normalized exact match of answer or first clause
    ("vqa", LEFT, "left", "left", True),  # case-insensitive
    ("vqa", LEFT, "Left side.", "left side", False),  # a different phrase is not the answer
    ("vqa", LEFT, "Left. The lesion is in the left hemisphere.", "left lesion is in left hemisphere", True),  # first clause
    # --- open: normalized exact match; recall/F1 reported
    ("vqa", OPEN, "The right lower lobe.", "The right lower lobe.", True),  # articles/punctuation ignored
    ("vqa", OPEN, "right lung", "right lung", False),  # partial: wrong, judge may decide
    # --- multiple choice: letter in any common form, or unique option text
    ("mcq", MCQ, "B", "B", True),  # bare letter
    ("mcq", MCQ, "(B)", "B", True),  # parenthesised
    ("mcq", MCQ, "B.", "B", True),  # with a period
    ("mcq", MCQ, "B) Viral pneumonia", "B", True),  # letter then option text
    ("mcq", MCQ, "**Answer**: B", "B", True),  # markdown answer line
    ("mcq", MCQ, "\\boxed{B}", "B", True),  # boxed
    ("mcq", MCQ, "Option B", "B", True),  # "Option X"
    ("mcq", MCQ, "After weighing them, the correct answer is B because ...", "B", True),  # sentence
    ("mcq", MCQ, "It is viral pneumonia.", "B", True),  # option text; "pneumonia" inside it is not a 2nd match
    ("mcq", MCQ, "Pulmonary edema", "C", False),  # option text of a wrong option
    ("mcq", RH, "O group and Rh-ve", "B", True),  # the whole option text, symbols kept: not "Rh+ve"
    ("mcq", MCQ, "A or B, hard to say", None, False),  # ambiguous: parse failure
    ("mcq", MCQ, "I cannot tell.", None, False),  # no letter, no option: parse failure (not a guess)
    ("mcq", MCQ, "<think>A looks right</think>\nD", "D", False),  # letter inside reasoning ignored
    ("mcq", MCQ, "", None, False),  # empty
    # --- a leading letter followed by an explanation is that letter (issue 11, item 5)
    ("mcq", MCQ, "B\n\nBecause the opacity is viral in pattern.", "B", True),  # letter, blank line, reasons
    ("mcq", MCQ, "B because the pattern is interstitial", "B", True),  # letter then "because"
    ("mcq", MCQ, "(C) the left lung shows edema", "C", False),  # parenthesised letter then text
    ("mcq", MCQ, "Answer: B. Explanation: the pattern is viral.", "B", True),  # answer line with explanation
    ("mcq", MCQ, "**B**\n\nThe pattern is viral.", "B", True),  # bold letter then a paragraph
    ("mcq", MCQ, "B, since A is too broad", "B", True),  # another letter inside the explanation is fine
    ("mcq", MCQ, "B. A is too broad.", "B", True),  # ... also after a period
    ("mcq", MCQ, "A nodule is seen, so D", None, False),  # the article "A" is not option A
    # --- hedges: several letters are wrong
    ("mcq", MCQ, "A, B", None, False),  # two letters
    ("mcq", MCQ, "B or C", None, False),  # "or"
    ("mcq", MCQ, "(A) and (B)", None, False),  # "and", parenthesised
    ("mcq", MCQ, "B/C", None, False),  # slash
    ("mcq", MCQ, "B, or possibly C", None, False),  # a hedged second letter
    ("mcq", MCQ, "The answer is B or C.", None, False),  # hedge after "answer is"
    ("mcq", MCQ, "B\nC", None, False),  # one letter per line
    ("mcq", MCQ, "A. B. C.", None, False),  # a list of letters
    ("mcq", {"choices": {"A": "B", "B": "C"}, "letter": "A"}, "A. B", "A", True),  # MedQA: option A's text is "B"
    # --- yes/no hedges are wrong; an explanation after the word is fine
    ("vqa", YES, "yes or no", None, False),  # the classic hedge
    ("vqa", YES, "Yes/no", None, False),  # slash
    ("vqa", NO, "either yes or no", None, False),  # no leading yes/no
    ("vqa", YES, "yes and no", None, False),  # "and"
    ("vqa", NO, "no, yes", None, False),  # both, comma
    ("vqa", YES, "Yes, there is an effusion.", "yes", True),  # yes then an explanation
    ("vqa", NO, "No, no abnormality is seen.", "no", True),  # a second "no" in the explanation
    ("vqa", YES, "Yes, no other abnormality is seen.", "yes", True),  # "no" starting the explanation
    ("vqa", YES, "Yes\n\nThe left lung shows an opacity.", "yes", True),  # blank line, reasons
    ("vqa", YES, "Yes. No.", None, False),  # both, as two sentences
    ("vqa", YES, "no yes", None, False),  # both, one after the other
    ("mcq", MCQ, "Option B or option C", None, False),  # hedge between named options
    ("vqa", LEFT, "left, right", "left right", False),  # a hedge between two closed answers
    ("vqa", LEFT, "Left. Right.", "left right", False),  # ... as two sentences
    ("vqa", LEFT, "Left; it could be right.", "left it could be right", False),  # ... with a hedging word
    ("vqa", {"text": "MRI", "closed": True}, "MRI, CT, X-ray and ultrasound", "mri ct x ray and ultrasound", False),
    # ^ a list after the comma is not an explanation
    ("vqa", {"text": "MRI", "closed": True}, "MRI, because soft tissue shows best", "mri because soft tissue shows best",
     True),  # an explanation after the comma
    # --- hedges written as a sentence after the answer
    ("mcq", MCQ, "B. It could also be C.", None, False),  # another letter with "could"
    ("mcq", MCQ, "B. Option C is possibly right.", None, False),  # "Option C" with "possibly"
    ("mcq", MCQ, "B. A nodule may be seen.", "B", True),  # "may", but the article "A" is no option
    ("vqa", YES, "Yes. It may be no.", None, False),  # the other word with "may"
    ("vqa", YES, "Yes, there may be no other lesion.", "yes", True),  # "no" here is not an answer
    ("vqa", LEFT, "Left, in the upper lobe.", "left in upper lobe", True),  # first clause, an explanation after it
]

MEDEVALKIT = [
    # --- yes/no by substring (DEFECT 5, reproduced)
    ("vqa", NO, "Normal.", "normal", True),  # DEFECT 5: "no" found inside "normal" -> counted correct
    ("vqa", NO, "Nodule in the right lung", "nodule in the right lung", True),  # "no" inside "nodule"
    ("vqa", YES, "Yes, it is normal.", "yes, it is normal", False),  # both "yes" and "no" present -> wrong
    ("vqa", YES, "not sure, probably yes", "not sure, probably yes", False),  # "no" in "not": both -> wrong
    ("vqa", NO, "The answer is no.", " no", True),  # its "answer is" split keeps the leading space
    ("vqa", YES, "", "", False),  # empty: wrong, no crash
    ("vqa", {"text": "Yes", "closed": True}, "Yes.", "yes", True),  # SLAKE writes "Yes": exact match, not substring
    ("vqa", {"text": "Yes", "closed": True}, "Yes, it is", "yes, it is", False),  # ... so extra words make it wrong
    # --- closed non-yes/no: exact match after removing "." and newlines
    ("vqa", LEFT, "Left.", "left", True),  # period removed
    ("vqa", LEFT, "Left side", "left side", False),  # anything more is wrong
    # --- open: exact match after its parse_response, no article/punctuation normalization
    ("vqa", OPEN, "right lower lobe", "right lower lobe", True),  # exact
    ("vqa", OPEN, "The right lower lobe.", "the right lower lobe.", False),  # strict calls this correct
    # --- multiple choice: its judge_multi_choice
    ("mcq", MCQ, "B", "B", True),  # bare letter
    ("mcq", MCQ, "B. Viral pneumonia", "B", True),  # text before the first "."
    ("mcq", MCQ, "**Answer**: B", "B", True),  # answer pattern split
    ("mcq", MCQ, "Option B", "C", False),  # not a letter form it knows: difflib similarity picks C
    ("mcq", MCQ, "I cannot tell.", "D", False),  # unparsable is silently guessed (never a parse failure)
    ("mcq", MCQ, "<think>A looks right</think>\n\nD", "D", False),  # last paragraph is a bare letter
    ("mcq", MCQ, "<think>A looks right</think>\nD", "C", False),  # one paragraph, no letter: a guess
]


@pytest.mark.parametrize("task,answer,response,parsed,correct", STRICT)
def test_strict(task, answer, response, parsed, correct):
    out = score_record(task, answer, response, "strict")
    assert out["parsed"] == parsed
    assert out["correct"] is correct


@pytest.mark.parametrize("task,answer,response,parsed,correct", MEDEVALKIT)
def test_medevalkit(task, answer, response, parsed, correct):
    out = score_record(task, answer, response, "medevalkit")
    assert out["parsed"] == parsed
    assert out["correct"] is correct


def test_strict_and_medevalkit_differ_on_the_known_defects():
    # the substring yes/no test: one response, opposite verdicts
    for response in ("Normal.", "Nodule in the right lung"):
        assert score_record("vqa", NO, response, "strict")["correct"] is False
        assert score_record("vqa", NO, response, "medevalkit")["correct"] is True
    # an unparsable multiple-choice answer: strict reports a parse failure, MedEvalKit guesses
    assert score_record("mcq", MCQ, "I cannot tell.", "strict")["parsed"] is None
    assert score_record("mcq", MCQ, "I cannot tell.", "medevalkit")["parsed"] == "D"


def test_token_f1_order_strict_vs_medevalkit():
    # prediction 5 tokens, reference 2, both shared: precision 0.4, recall 1.0, F1 0.571
    ref = {"text": "right lung", "closed": False}
    strict = score_record("vqa", ref, "lung on the right side", "strict")
    assert strict["precision"] == pytest.approx(2 / 4)  # "the" is an article: 4 tokens
    assert strict["recall"] == pytest.approx(1.0)
    assert strict["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    mek = score_record("vqa", ref, "lung on the right side", "medevalkit")
    # DEFECT 4, reproduced: its "f1" is recall, "recall" is precision, "precision" is F1
    assert mek["f1"] == pytest.approx(1.0)
    assert mek["recall"] == pytest.approx(2 / 5)
    assert mek["precision"] == pytest.approx(2 * 0.4 / 1.4)


def test_empty_open_answer_scores_zero_and_flags_medevalkit_crash():
    # DEFECT 6: MedEvalKit's ROUGE/F1 crash on an empty answer; medmo scores 0
    assert score_record("vqa", OPEN, "", "strict") == {"parsed": None, "correct": False, "closed": False,
                                                        "precision": 0.0, "recall": 0.0, "f1": 0.0}
    mek = score_record("vqa", OPEN, "", "medevalkit")
    assert mek["correct"] is False and mek["f1"] == 0.0 and mek["medevalkit_crash"] is True


def test_judge_request_for_open_answers_only():
    out = score_record("vqa", OPEN, "right lung base", "strict", question="Where is the opacity?")
    assert out["judge"] == {"question": "Where is the opacity?", "reference": "right lower lobe", "response": "right lung base"}
    assert "judge" not in score_record("vqa", OPEN, "right lower lobe", "strict")  # exact match needs no judge
    assert "judge" not in score_record("vqa", YES, "maybe", "strict")  # closed questions are rule-scored
    assert "judge" not in score_record("mcq", MCQ, "B", "strict")


def test_closed_by_yes_no_follows_medevalkit_for_vqa_rad():
    # VQA-RAD: "Left" is CLOSED by answer_type, but MedEvalKit counts non-yes/no answers as open
    assert score_record("vqa", LEFT, "left", "medevalkit", closed_by="yes_no")["closed"] is False
    assert score_record("vqa", LEFT, "left", "medevalkit")["closed"] is True
    assert score_record("vqa", LEFT, "left", "strict", closed_by="yes_no")["closed"] is True


@pytest.mark.parametrize("bad", [dict(mode="lenient"), dict(task="report"), dict(closed_by="type")])
def test_bad_arguments_name_the_valid_ones(bad):
    kwargs = {"task": "vqa", "answer": YES, "response": "yes", "mode": "strict", **bad}
    with pytest.raises(ValueError):
        score_record(kwargs.pop("task"), kwargs.pop("answer"), kwargs.pop("response"), kwargs.pop("mode"), **kwargs)


def test_extraction_helpers():
    assert boxed_content("x \\boxed{\\frac{1}{2}} y \\boxed{B}") == "B"  # the last box
    assert boxed_content("\\boxed{\\text{yes}}") == "yes"  # \text{} unwrapped
    assert boxed_content("no box") is None
    assert strip_think("<think>a</think> b <think>c</think>d") == "b d"
    assert strip_think("reasoning</think>final") == "final"  # template put <think> in the prompt
    assert extract_final("Let me see.\nFinal answer: C\nbecause") == "C"
    assert token_prf("", "x") == (0.0, 0.0, 0.0)
    assert token_prf("肺部", "肺") == pytest.approx((0.5, 1.0, 2 / 3))  # CJK by character


def test_aggregate_reports_closed_open_overall_and_groups():
    samples = [
        {"answer": YES, "parsed": "yes", "correct": True, "meta": {"organ": "chest"}},
        {"answer": NO, "parsed": None, "correct": False, "meta": {"organ": "chest"}},
        {"answer": OPEN, "parsed": "x", "correct": True, "recall": 1.0, "f1": 0.5, "meta": {"organ": "head"}},
    ]
    out = aggregate_qa(samples, groups=("organ",))
    assert out["n"] == 3 and out["accuracy"] == pytest.approx(2 / 3)
    assert (out["n_closed"], out["closed_accuracy"]) == (2, 0.5)
    assert (out["n_open"], out["open_accuracy"]) == (1, 1.0)  # divided once (DEFECT 1 not copied)
    assert out["parse_failures"] == 1
    assert out["open_recall"] == 1.0 and out["open_f1"] == 0.5
    assert out["by_organ"] == {"chest": {"n": 2, "accuracy": 0.5}, "head": {"n": 1, "accuracy": 1.0}}
    # a sample's own "closed" (how it was scored) wins over the dataset's
    assert aggregate_qa([{**samples[0], "closed": False}])["n_open"] == 1
    # MCQ only: no closed/open keys
    assert "closed_accuracy" not in aggregate_qa([{"answer": MCQ, "parsed": "B", "correct": True}])


def test_modes_constant():
    assert MODES == ("strict", "medevalkit")


# ---------------------------------------------------------------- property tests (hypothesis)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CHOICES = {"A": "Pneumonia", "B": "Viral pneumonia", "C": "Pulmonary edema", "D": "Normal", "E": "Atelectasis"}
LETTER_FORMS = ["{L}", "({L})", "[{L}]", "{L}.", "{L})", "{L}:", "**{L}**", "**{L}.**", "({L}) {text}",
                "{L}. {text}", "{L}) {text}", "Answer: {L}", "The answer is {L}", "\\boxed{{{L}}}", "Option {L}",
                "<answer>{L}</answer>", "<think>Maybe A or C.</think>{L}"]
EXPLANATIONS = ["", ".", "\n\nBecause the pattern is typical.", " because the pattern is typical.",
                ", since the opacity is bilateral.", " - the opacity is bilateral.", "\nExplanation: it fits best.",
                " as the silhouette is enlarged.", "\n\nA and C are less likely."]
HEDGE_SEPARATORS = [", ", " or ", " and ", "/", " or possibly ", ", or ", " & "]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(CHOICES)), st.sampled_from(LETTER_FORMS), st.sampled_from(EXPLANATIONS))
def test_property_leading_letter_with_any_explanation_is_that_letter(letter, form, explanation):
    response = form.format(L=letter, text=CHOICES[letter]) + explanation
    out = score_record("mcq", {"choices": CHOICES, "letter": letter}, response)
    assert out["parsed"] == letter and out["correct"], response


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(CHOICES)), min_size=2, max_size=3, unique=True),
       st.sampled_from(HEDGE_SEPARATORS), st.sampled_from(["{L}", "({L})", "Option {L}"]),
       st.sampled_from(["", "The answer is ", "Answer: "]))
def test_property_several_letters_are_a_hedge(letters, sep, form, lead):
    response = lead + sep.join(form.format(L=x) for x in letters)
    for truth in letters:  # whichever is right, the hedge is wrong
        assert score_record("mcq", {"choices": CHOICES, "letter": truth}, response)["correct"] is False, response


YES_NO_FORMS = ["{w}", "{W}", "**{W}**", "{W}.", "The answer is {w}", "\\boxed{{{w}}}", "<think>no idea</think>{W}"]
YES_NO_EXPLANATIONS = ["", ".", ", there is an opacity.", "\n\nThe lungs show an opacity.", ". No other finding.",
                       ", because the heart is enlarged."]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["yes", "no"]), st.sampled_from(YES_NO_FORMS), st.sampled_from(YES_NO_EXPLANATIONS))
def test_property_leading_yes_no_with_any_explanation_is_that_answer(word, form, explanation):
    response = form.format(w=word, W=word.capitalize()) + explanation
    for truth in ("yes", "no"):
        out = score_record("vqa", {"text": truth, "closed": True}, response)
        assert out["correct"] is (truth == word), response


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([("yes", "no"), ("no", "yes")]), st.sampled_from([" or ", "/", " and ", ", or ", " | "]),
       st.sampled_from(["", "either ", "The answer is ", "Answer: "]), st.booleans(), st.sampled_from(["", ".", "?"]))
def test_property_yes_no_hedges_are_wrong(pair, sep, lead, capital, end):
    first, second = (w.capitalize() if capital else w for w in pair)
    response = f"{lead}{first}{sep}{second}{end}"
    for truth in ("yes", "no"):
        assert score_record("vqa", {"text": truth, "closed": True}, response)["correct"] is False, response


HEDGE_SENTENCES = [" It could also be {o}.", " {o} might be correct too.", "\n\nPossibly {o}.", " Maybe ({o}).",
                   ", or perhaps option {o}."]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(sorted(CHOICES)), min_size=2, max_size=2, unique=True),
       st.sampled_from(["{L}", "({L})", "{L}.", "**{L}**", "The answer is {L}."]), st.sampled_from(HEDGE_SENTENCES))
def test_property_a_hedging_sentence_after_the_letter_is_a_hedge(pair, form, hedge):
    chosen, other = pair
    response = form.format(L=chosen) + hedge.format(o=other)
    assert score_record("mcq", {"choices": CHOICES, "letter": chosen}, response)["correct"] is False, response
