"""MedXpertQA MM test (2,000 five-option questions with images); paper: Zuo et al., ICML
2025. Data: medxpertqa_mm_input.jsonl (GitHub) or MM/test.jsonl (HF) with images/.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("medxpertqa_mm", family="vqa", source="medxpertqa_mm", split="test", default_data="medxpertqa",
            groups=("medical_task", "body_system", "question_type"), expected="the MedXpertQA MM jsonl and images/",
            description="MedXpertQA multimodal, multiple choice")
