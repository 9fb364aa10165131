"""SLAKE 1.0 test, English questions (1,061: 645 open / 416 closed), the usual "SLAKE" column.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("slake_en", family="vqa", source="slake", split="test", default_data="slake",
            keep=lambda r: r.meta.get("lang") == "en", groups=("content_type", "modality"),
            expected="the SLAKE folder with test.json and imgs/", description="SLAKE test, English")
