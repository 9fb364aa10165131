"""SLAKE 1.0 test, Chinese questions (1,033). Chinese yes/no answers (是的/不是, 有/没有,
包含/不包含) are judged by polarity in strict mode (medmo.eval.scoring).
Size checked on shared/data/slake/test.json (q_lang == "zh").
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("slake_zh", family="vqa", source="slake", split="test", default_data="slake",
            keep=lambda r: r.meta.get("lang") == "zh", groups=("content_type", "modality"),
            expected="the SLAKE folder with test.json and imgs/", description="SLAKE test, Chinese",
            size=1033, url="https://huggingface.co/datasets/BoKelvin/SLAKE", licence="CC BY 4.0",
            size_checked="shared/data/slake/test.json")
