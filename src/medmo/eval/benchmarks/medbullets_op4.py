"""Medbullets, 4 options (308 questions); paper: Chen et al., NAACL 2025. Data:
medbullets_op4.csv (github HanjieChen/ChallengeClinicalQA).
Size: 308 from the paper and the release; no Medbullets data is in shared/data.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("medbullets_op4", family="textqa", source="medbullets_op4", split="test", default_data="medbullets",
            expected="medbullets_op4.csv", description="Medbullets, 4 options",
            size=308, url="https://github.com/HanjieChen/ChallengeClinicalQA", licence="CC BY-NC 4.0 (research use)",
            size_checked="unverified: the paper's count")
