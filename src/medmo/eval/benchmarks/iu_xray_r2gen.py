"""IU-Xray test, R2Gen's split (590 studies, frontal + lateral images), chest X-ray report
generation, the split most report-generation papers use; not MedMO's population (that is
iu_xray). Paper: Demner-Fushman et al., JAMIA 2016; split: Chen et al., EMNLP 2020 (R2Gen).
Data: R2Gen's annotation.json with images/ (see medmo.data.sources.iu_xray; CC BY-NC-ND,
not shipped). R2Gen's references are the findings only, so the reference text is
"Findings: <f> Impression:". Metrics as mimic_cxr.
Size: 590 from R2Gen's release; not checked here (no R2Gen data in shared/data).
"""
from medmo.eval.benchmarks._report import register_report

register_report("iu_xray_r2gen", source="iu_xray", default_data="iu_xray", split="test",
                keep=lambda r: r.meta.get("format") == "r2gen",
                expected="R2Gen's iu_xray folder (annotation.json + images/); MedEvalKit's test.json is iu_xray",
                description="IU-Xray test (R2Gen split), chest X-ray report generation",
                size=590, url="https://github.com/zhjohnchan/R2Gen", licence="CC BY-NC-ND 4.0 (Open-i)",
                size_checked="unverified: R2Gen's release")
