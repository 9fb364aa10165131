"""MIMIC-CXR test (official split: 3,269 studies before filtering), chest X-ray report
generation; paper: Johnson et al., Scientific Data 2019. Data: MIMIC-CXR-JPG 2.0.0 plus the
reports (PhysioNet credentialed access; see medmo.data.sources.mimic_cxr). All views of a
study are given, PA first. Metrics: BLEU-1..4, ROUGE-L, CIDEr-D, rule CheXpert F1, and
RaTEScore / SembScore when their model files are local (medmo.eval.model_metrics).
"""
from medmo.eval.benchmarks._report import register_report

register_report("mimic_cxr", source="mimic_cxr", default_data="mimic_cxr", split="test",
                expected="the MIMIC-CXR-JPG 2.0.0 folder (mimic-cxr-2.0.0-split.csv.gz, files/ with the report .txt files)",
                description="MIMIC-CXR test, chest X-ray report generation (Findings/Impression)",
                url="https://physionet.org/content/mimic-cxr-jpg/2.0.0/",
                licence="PhysioNet Credentialed Health Data License 1.5.0",
                size_checked="unverified: 3,269 official test studies before empty reports are dropped; "
                             "the count after MedEvalKit's filter is not published")
