"""SLAKE 1.0 test, both languages (2,094 questions); paper: Liu et al., ISBI 2021. Data: the
SLAKE folder (test.json + imgs/, HF BoKelvin/SLAKE). slake_en / slake_zh are one language each.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("slake", family="vqa", source="slake", split="test", default_data="slake",
            groups=("lang", "content_type", "modality"), expected="the SLAKE folder with test.json and imgs/",
            description="SLAKE test, English and Chinese")
