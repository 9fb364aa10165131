"""MedXpertQA Text test (2,450 ten-option questions); paper: Zuo et al., ICML 2025. Data:
medxpertqa_text_input.jsonl (GitHub) or Text/test.jsonl (HF).
Size: 2,450 from the paper and the HF card; shared/data holds a 244-question sample
(medxpertqa_sampled_text_input.jsonl), which is reported as partial.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("medxpertqa_text", family="textqa", source="medxpertqa_text", split="test", default_data="medxpertqa",
            groups=("medical_task", "body_system", "question_type"), expected="the MedXpertQA Text jsonl",
            description="MedXpertQA text, multiple choice (A-J)",
            size=2450, url="https://huggingface.co/datasets/TsinghuaC3I/MedXpertQA", licence="MIT",
            size_checked="unverified: the paper's and HF card's count (shared/data has a 244-item sample)")
