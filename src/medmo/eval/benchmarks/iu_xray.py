"""IU-Xray test (R2Gen's split: 590 studies, frontal + lateral images), chest X-ray report
generation; paper: Demner-Fushman et al., JAMIA 2016. Data: R2Gen's annotation.json with
images/ (see medmo.data.sources.iu_xray; CC BY-NC-ND, not shipped). R2Gen's references are
the findings only, so the reference text is "Findings: <f> Impression:". Metrics as mimic_cxr.
MedEvalKit crashes on this benchmark (DESIGN.md); medmo scores it.
"""
from medmo.eval.benchmarks._report import register_report

register_report("iu_xray", source="iu_xray", default_data="iu_xray", split="test",
                expected="R2Gen's iu_xray folder (annotation.json + images/)",
                description="IU-Xray test (R2Gen split), chest X-ray report generation")
