"""PMC-VQA test_2 (2,000 four-option questions on PubMed Central figures); paper: Zhang et
al., 2023. Data: the PMC-VQA folder (test_2.csv + images/).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("pmc_vqa", family="vqa", source="pmc_vqa", split="test", default_data="pmc_vqa",
            expected="the PMC-VQA folder with test_2.csv and images/", description="PMC-VQA test_2, multiple choice")
