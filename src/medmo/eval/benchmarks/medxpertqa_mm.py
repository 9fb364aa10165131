"""MedXpertQA MM test (2,000 five-option questions with images); paper: Zuo et al., ICML
2025. Data: medxpertqa_mm_input.jsonl (GitHub) or MM/test.jsonl (HF) with images/.
Size checked on shared/data/medxpertqa/medxpertqa_mm_input.jsonl (2,000 questions).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("medxpertqa_mm", family="vqa", source="medxpertqa_mm", split="test", default_data="medxpertqa",
            groups=("medical_task", "body_system", "question_type"), expected="the MedXpertQA MM jsonl and images/",
            description="MedXpertQA multimodal, multiple choice",
            size=2000, url="https://huggingface.co/datasets/TsinghuaC3I/MedXpertQA", licence="MIT",
            size_checked="shared/data/medxpertqa/medxpertqa_mm_input.jsonl")
