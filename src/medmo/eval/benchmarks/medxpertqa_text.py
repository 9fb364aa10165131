"""MedXpertQA Text test (2,450 ten-option questions); paper: Zuo et al., ICML 2025. Data:
medxpertqa_text_input.jsonl (GitHub) or Text/test.jsonl (HF).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("medxpertqa_text", family="textqa", source="medxpertqa_text", split="test", default_data="medxpertqa",
            groups=("medical_task", "body_system", "question_type"), expected="the MedXpertQA Text jsonl",
            description="MedXpertQA text, multiple choice (A-J)")
