"""PathVQA test (6,719 questions, yes/no closed and open), pathology VQA; paper: He et al.,
2020. Data: HF flaviagiammarino/path-vqa (parquet shards or save_to_disk).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("path_vqa", family="vqa", source="path_vqa", split="test", default_data="path_vqa", closed_by="yes_no",
            expected="the flaviagiammarino/path-vqa parquet folder", description="PathVQA test")
