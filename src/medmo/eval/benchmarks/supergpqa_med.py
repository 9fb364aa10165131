"""SuperGPQA, medicine discipline (2,755 questions, up to ten options); M-A-P, 2025. Data:
SuperGPQA-all.jsonl (HF m-a-p/SuperGPQA). Breakdowns by field and difficulty.
Size: 2,755 questions with discipline "Medicine" per the dataset's statistics; no SuperGPQA
data is in shared/data, so it is not checked here.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("supergpqa_med", family="textqa", source="supergpqa_med", split="test", default_data="supergpqa",
            groups=("field", "difficulty"), expected="SuperGPQA-all.jsonl", description="SuperGPQA medicine",
            size=2755, url="https://huggingface.co/datasets/m-a-p/SuperGPQA", licence="ODC-BY",
            size_checked="unverified: the dataset's discipline statistics")
