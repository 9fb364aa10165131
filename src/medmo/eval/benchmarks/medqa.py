"""MedQA-USMLE test, four options (1,273 questions); paper: Jin et al., 2021. Data: the
4-option test jsonl (jind11/MedQA 4_options/ or GBaker/MedQA-USMLE-4-options).
Size checked on shared/data/medqa (1,273).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("medqa", family="textqa", source="medqa", split="test", default_data="medqa",
            keep=lambda r: r.meta.get("n_options") == 4, groups=("meta_info",),
            expected="the MedQA-USMLE 4-option test jsonl", description="MedQA-USMLE test, 4 options",
            size=1273, url="https://github.com/jind11/MedQA (HF GBaker/MedQA-USMLE-4-options)", licence="MIT",
            size_checked="shared/data/medqa")
