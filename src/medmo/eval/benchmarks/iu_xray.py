"""IU-Xray test as MedEvalKit evaluates it (its datas/IU_XRAY/test.json: 296 studies with
findings and impression, two to four images each), chest X-ray report generation; the
paper-comparable IU-Xray. Paper: Demner-Fushman et al., JAMIA 2016. Data: MedEvalKit's
test.json with images/ (Open-i PNGs; see medmo.data.sources.iu_xray). The reference text
is "Findings: <f> Impression: <i>". Metrics as mimic_cxr. MedEvalKit crashes on this
benchmark (DESIGN.md); medmo scores it. R2Gen's 590-study split is iu_xray_r2gen.
Size checked on shared/data/iu_xray_medevalkit/test.json (296).
"""
from medmo.eval.benchmarks._report import register_report

register_report("iu_xray", source="iu_xray", default_data="iu_xray_medevalkit", split="test",
                keep=lambda r: r.meta.get("format") == "medevalkit",
                expected="MedEvalKit's IU_XRAY folder (test.json + images/); R2Gen's annotation.json is iu_xray_r2gen",
                description="IU-Xray test (MedEvalKit's 296 studies), chest X-ray report generation",
                size=296, url="https://github.com/alibaba-damo-academy/MedEvalKit (datas/IU_XRAY/test.json)",
                licence="Open-i (NLM) research use", size_checked="shared/data/iu_xray_medevalkit/test.json")
