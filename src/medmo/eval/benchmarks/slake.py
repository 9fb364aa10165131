"""SLAKE 1.0 test, both languages (2,094 questions: 1,061 English + 1,033 Chinese); paper:
Liu et al., ISBI 2021. The paper-comparable SLAKE: MedEvalKit (the toolkit behind MedMO's
tables) reads the whole test.json, both languages, with the closed/open prompt of each
question's answer_type. slake_en / slake_zh are one language each. Data: the SLAKE folder
(test.json + imgs/, HF BoKelvin/SLAKE). Size checked on shared/data/slake/test.json.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("slake", family="vqa", source="slake", split="test", default_data="slake",
            groups=("lang", "content_type", "modality"), expected="the SLAKE folder with test.json and imgs/",
            description="SLAKE test, English and Chinese (MedEvalKit's population)",
            size=2094, subsets={"lang": {"en": 1061, "zh": 1033}},
            url="https://huggingface.co/datasets/BoKelvin/SLAKE", licence="CC BY 4.0",
            size_checked="shared/data/slake/test.json")
