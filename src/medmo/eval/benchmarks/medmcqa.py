"""MedMCQA validation (4,183 four-option questions, the split MedEvalKit evaluates); paper:
Pal et al., CHIL 2022. Breakdown by subject. Size checked on shared/data/medmcqa (4,183).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("medmcqa", family="textqa", source="medmcqa", split="validation", default_data="medmcqa",
            groups=("subject",), expected="MedMCQA validation data (dev.json or openlifescienceai/medmcqa)",
            description="MedMCQA validation",
            size=4183, url="https://huggingface.co/datasets/openlifescienceai/medmcqa", licence="MIT",
            size_checked="shared/data/medmcqa")
