"""Medbullets, five options (308 questions); paper: Chen et al., NAACL 2025. Data:
medbullets_op5.csv (github HanjieChen/ChallengeClinicalQA).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("medbullets_op5", family="textqa", source="medbullets_op5", split="test", default_data="medbullets",
            expected="medbullets_op5.csv", description="Medbullets, 5 options")
