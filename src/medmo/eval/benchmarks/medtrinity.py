"""MedTrinity-25M, multigranular medical image description across modalities, scored like a
report; paper: Xie et al., 2024. MedMO's held-out MedTrinity split is not published, so
the benchmark reads whatever split the data folder holds (HF parquet shards, split
"train"; pass --data at a held-out shard). Metrics: BLEU-1..4, ROUGE-L, CIDEr-D and
RaTEScore when available; no CheXpert labels (not chest X-ray).
"""
from medmo.eval.benchmarks._report import register_report

register_report("medtrinity", source="medtrinity", default_data="medtrinity", split=None, chest_xray=False,
                expected="a MedTrinity-25M Hugging Face folder (data/train-*.parquet or save_to_disk)",
                description="MedTrinity-25M descriptions, scored as reports",
                url="https://huggingface.co/datasets/UCSC-VLAA/MedTrinity-25M",
                licence="research use (per the dataset card)",
                size_checked="unverified: MedMO's held-out split is not published")
