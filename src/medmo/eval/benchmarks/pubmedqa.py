"""PubMedQA test (the official 500 PQA-L questions, yes/no/maybe with the abstract as
context); paper: Jin et al., EMNLP 2019. Data: ori_pqal.json + test_ground_truth.json.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("pubmedqa", family="textqa", source="pubmedqa", split="test", default_data="pubmedqa",
            expected="the PubMedQA data folder (ori_pqal.json, test_ground_truth.json)",
            description="PubMedQA PQA-L test, yes/no/maybe")
