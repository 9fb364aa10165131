"""The rule CheXpert labeler: mentions, negation, uncertainty, aggregation, and the F1 built on it."""
from __future__ import annotations

import pytest

from medmo.eval.chexpert import FIVE, OBSERVATIONS, label_f1, label_report, rule_chexpert_f1

CASES = [
    # (report text, expected labels: exactly these keys)
    ("", {}),  # empty report: nothing mentioned, not even No Finding
    ("Mild cardiomegaly.", {"Cardiomegaly": 1}),  # plain positive mention
    ("No pleural effusion or pneumothorax.", {"Pleural Effusion": 0, "Pneumothorax": 0, "No Finding": 1}),  # negation scope runs over a list
    ("No evidence of consolidation, effusion, or pneumothorax.", {"Consolidation": 0, "Pleural Effusion": 0, "Pneumothorax": 0, "No Finding": 1}),  # "no evidence of" + commas
    ("Heart size is normal. Lungs are clear.", {"Cardiomegaly": 0, "No Finding": 1}),  # attribute + normality phrase
    ("Stable heart size.", {"No Finding": 1}),  # attribute alone says nothing
    ("The heart is mildly enlarged.", {"Cardiomegaly": 1}),  # attribute + enlargement word
    ("Normal cardiomediastinal silhouette.", {"Enlarged Cardiomediastinum": 0, "No Finding": 1}),  # normality before an attribute
    ("Possible left basilar pneumonia.", {"Pneumonia": -1}),  # uncertainty cue before
    ("Pneumonia cannot be excluded.", {"Pneumonia": -1}),  # uncertainty cue after (contains "not", still uncertain)
    ("Atelectasis versus pneumonia at the right base.", {"Atelectasis": -1, "Pneumonia": -1}),  # "versus": both uncertain
    ("Left lower lobe opacity may represent atelectasis.", {"Lung Opacity": 1, "Atelectasis": -1}),  # cue applies only after it
    ("No pneumothorax, there is a small left effusion.", {"Pneumothorax": 0, "Pleural Effusion": 1}),  # "there is" ends the negation scope
    ("No pneumothorax but a small left effusion.", {"Pneumothorax": 0, "Pleural Effusion": 1}),  # "but" ends the negation scope
    ("Small pericardial effusion.", {"No Finding": 1}),  # pericardial is not pleural
    ("Kerley B lines.", {"No Finding": 1}),  # bare "lines" is not a device
    ("Right PICC line tip in the SVC.", {"Support Devices": 1, "No Finding": 1}),  # devices do not block No Finding
    ("The endotracheal tube has been removed.", {"Support Devices": 0, "No Finding": 1}),  # post-negation "has been removed"
    ("Interval resolution of the left effusion.", {"Pleural Effusion": 0, "No Finding": 1}),  # "resolution of"
    ("Effusion is not seen. Large right effusion.", {"Pleural Effusion": 1}),  # positive beats negative across mentions
    ("Possible effusion. No effusion on the left.", {"Pleural Effusion": -1}),  # uncertain beats negative
    ("Acute rib fracture. Pleural thickening.", {"Fracture": 1, "Pleural Other": 1}),  # two observations
    ("Lungs are clear.\nNo focal consolidation; mild pulmonary edema.", {"Consolidation": 0, "Edema": 1}),  # ";" and newline split
    ("Findings: 1.5 cm nodule in the right upper lobe. Impression: Lung nodule.", {"Lung Lesion": 1}),  # decimals do not split
    ("Lungs are clear without focal consolidation, effusion, or pneumothorax.", {"Consolidation": 0, "Pleural Effusion": 0, "Pneumothorax": 0, "No Finding": 1}),  # "without" over a list
    ("Cardiac silhouette is top-normal.", {"Cardiomegaly": 0, "No Finding": 1}),  # top-normal is normal
    ("Heart size is mildly enlarged.", {"Cardiomegaly": 1}),  # enlargement word after a modifier
    ("The mediastinum is widened.", {"Enlarged Cardiomediastinum": 1}),  # attribute + "widened"
    ("Pneumonia is not excluded.", {"Pneumonia": -1}),  # "not excluded" is uncertainty, not negation
    ("Left retrocardiac opacity, which may reflect atelectasis or pneumonia.", {"Lung Opacity": 1, "Atelectasis": -1, "Pneumonia": -1}),  # cue after "which"
    ("Unchanged moderate cardiomegaly with mild pulmonary vascular congestion.", {"Cardiomegaly": 1, "Edema": 1}),  # congestion counts as edema
    ("No displaced rib fractures.", {"Fracture": 0, "No Finding": 1}),  # negation across modifiers
    ("No change in the left pleural effusion.", {"Pleural Effusion": 1}),  # a persisting finding is positive
    ("No interval change in mild cardiomegaly.", {"Cardiomegaly": 1}),  # "interval" between "no" and "change"
    ("No significant change in bibasilar atelectasis. No pneumothorax.", {"Atelectasis": 1, "Pneumothorax": 0}),  # the next sentence still negates
    ("Without interval progression of the right lower lobe consolidation.", {"Consolidation": 1}),  # "without ... progression of"
    ("No change. No effusion.", {"Pleural Effusion": 0, "No Finding": 1}),  # "no change" alone does not un-negate the next sentence
]

STATED_CASES = [
    # (text, labels with stated_only=True: "No Finding" only when a normal study is stated)
    ("asdf qwerty", {}),  # no statement at all (the default labeler says "No Finding")
    ("x", {}),  # one letter
    ("No change.", {}),  # says nothing about any observation
    ("No acute cardiopulmonary process.", {"No Finding": 1}),  # a stated normal study
    ("The lungs are clear. No effusion.", {"Pleural Effusion": 0, "No Finding": 1}),  # clear lungs
    ("No effusion.", {"Pleural Effusion": 0}),  # a negated observation, no normal-study statement
    ("Cardiomegaly. Lungs are clear.", {"Cardiomegaly": 1}),  # a pathology beats the normal statement
    ("Normal chest radiograph.", {"No Finding": 1}),  # "normal chest radiograph"
]


@pytest.mark.parametrize("text,expected", STATED_CASES)
def test_label_report_stated_only(text, expected):
    assert label_report(text, stated_only=True) == expected


@pytest.mark.parametrize("text,expected", CASES)
def test_label_report_table(text, expected):
    assert label_report(text) == expected


def test_observations_are_the_fourteen():
    assert len(OBSERVATIONS) == 14 and set(FIVE) <= set(OBSERVATIONS)
    labels = label_report("Cardiomegaly, edema, effusion, atelectasis, consolidation, pneumonia, fracture.")
    assert list(labels) == [o for o in OBSERVATIONS if o in labels]  # canonical order


F1_CASES = [
    # (reference, hypothesis, expected label_f1)
    ("No acute process.", "Lungs are clear.", 1.0),  # both normal: agreement
    ("Mild cardiomegaly.", "Mild cardiomegaly.", 1.0),  # same finding
    ("Mild cardiomegaly.", "No cardiomegaly.", 0.0),  # negated finding does not count
    ("Cardiomegaly and effusion.", "Cardiomegaly.", 2 / 3),  # one of two found
]


@pytest.mark.parametrize("ref,hyp,expected", F1_CASES)
def test_label_f1_table(ref, hyp, expected):
    assert label_f1(ref, hyp) == pytest.approx(expected)


def test_rule_chexpert_f1_corpus():
    refs = ["Cardiomegaly. Small left effusion.", "No acute process.", "Right lower lobe pneumonia."]
    hyps = ["Cardiomegaly.", "No acute process.", "Possible pneumonia."]
    out = rule_chexpert_f1(refs, hyps)
    # positives: ref {Cm, Eff, NoF(no: Cm present)...}: TP Cm, NoF; FN Eff, Pneumonia (uncertain counts as negative)
    assert out["rule_chexpert_f1_micro14"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 2))
    assert out["rule_chexpert_f1_micro5"] == pytest.approx(2 * 1 / (2 * 1 + 0 + 1))
    lenient = rule_chexpert_f1(refs, hyps, uncertain_as_positive=True)
    assert lenient["rule_chexpert_f1_micro14"] > out["rule_chexpert_f1_micro14"]
    with pytest.raises(ValueError):
        rule_chexpert_f1(["a"], [])


def test_docstring_examples():
    import doctest

    import medmo.eval.chexpert

    result = doctest.testmod(medmo.eval.chexpert)
    assert result.attempted >= 2 and result.failed == 0
