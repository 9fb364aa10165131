"""PathVQA test (6,719 questions, yes/no closed and open), pathology VQA; paper: He et al.,
2020. Data: HF flaviagiammarino/path-vqa (parquet shards or save_to_disk).
Size: 6,719 is the test split of the paper and the HF card; no PathVQA data is in
shared/data, so it is not checked here.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("path_vqa", family="vqa", source="path_vqa", split="test", default_data="path_vqa", closed_by="yes_no",
            expected="the flaviagiammarino/path-vqa parquet folder", description="PathVQA test",
            size=6719, url="https://huggingface.co/datasets/flaviagiammarino/path-vqa", licence="MIT",
            size_checked="unverified: the paper's and HF card's test split")
