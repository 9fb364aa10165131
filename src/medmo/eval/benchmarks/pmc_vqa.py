"""PMC-VQA test_2 (four-option questions on PubMed Central figures); paper: Zhang et al.,
2023. Data: the PMC-VQA folder (test_2.csv + images/), MedEvalKit's file (RadGenome/PMC-VQA).
Size: 2,000 is the size of the cleaned test set (test_clean.csv in xmcmic/PMC-VQA) that
most tables report; whether MedEvalKit's test_2.csv has the same 2,000 rows could not be
checked (no PMC-VQA data in shared/data; xmcmic's test_2.csv is 12 MB, which suggests more
rows). A result on another count is reported as partial, not compared as complete.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("pmc_vqa", family="vqa", source="pmc_vqa", split="test", default_data="pmc_vqa",
            expected="the PMC-VQA folder with test_2.csv and images/", description="PMC-VQA test_2, multiple choice",
            size=2000, url="https://huggingface.co/datasets/RadGenome/PMC-VQA", licence="CC BY-SA 4.0",
            size_checked="unverified: test_clean.csv's 2,000; test_2.csv's count not checked")
