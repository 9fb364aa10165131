"""CheXpert Plus valid split (no public test split; MedEvalKit also evaluates a held-out
subset), chest X-ray report generation, one image per record; paper: Chambon et al., 2024.
Data: df_chexpert_plus_240401.csv with the PNG or JPG images (Stanford AIMI research use
agreement; see medmo.data.sources.chexpert_plus). Metrics as mimic_cxr.
"""
from medmo.eval.benchmarks._report import register_report

register_report("chexpert_plus", source="chexpert_plus", default_data="chexpert_plus", split="valid",
                expected="the CheXpert Plus folder with df_chexpert_plus_240401.csv and PNG/ (or the JPGs)",
                description="CheXpert Plus valid, chest X-ray report generation (Findings/Impression)",
                url="https://aimi.stanford.edu/datasets/chexpert-plus",
                licence="Stanford research use agreement (non-commercial)",
                size_checked="unverified: MedEvalKit's held-out subset is not published")
