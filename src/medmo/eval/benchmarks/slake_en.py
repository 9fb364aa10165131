"""SLAKE 1.0 test, English questions (1,061: 645 open / 416 closed), the column many tables
call "SLAKE"; MedEvalKit and MedMO's tables use both languages (see slake).
Size checked on shared/data/slake/test.json (q_lang == "en").
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("slake_en", family="vqa", source="slake", split="test", default_data="slake",
            keep=lambda r: r.meta.get("lang") == "en", groups=("content_type", "modality"),
            expected="the SLAKE folder with test.json and imgs/", description="SLAKE test, English",
            size=1061, url="https://huggingface.co/datasets/BoKelvin/SLAKE", licence="CC BY 4.0",
            size_checked="shared/data/slake/test.json")
