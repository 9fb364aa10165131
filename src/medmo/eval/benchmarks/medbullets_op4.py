"""Medbullets, four options (308 questions); paper: Chen et al., NAACL 2025. Data:
medbullets_op4.csv (github HanjieChen/ChallengeClinicalQA).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("medbullets_op4", family="textqa", source="medbullets_op4", split="test", default_data="medbullets",
            expected="medbullets_op4.csv", description="Medbullets, 4 options")
