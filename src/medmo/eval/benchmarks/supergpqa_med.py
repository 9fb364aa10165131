"""SuperGPQA, medicine discipline (2,755 questions, up to ten options); M-A-P, 2025. Data:
SuperGPQA-all.jsonl (HF m-a-p/SuperGPQA). Breakdowns by field and difficulty.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("supergpqa_med", family="textqa", source="supergpqa_med", split="test", default_data="supergpqa",
            groups=("field", "difficulty"), expected="SuperGPQA-all.jsonl", description="SuperGPQA medicine")
