"""PubMedQA test (the official 500 PQA-L questions, yes/no/maybe with the abstract as
context); paper: Jin et al., EMNLP 2019. Data: ori_pqal.json + test_ground_truth.json
(github pubmedqa/pubmedqa), MedEvalKit's openlifescienceai/pubmedqa (its "test" split is
the 500), or qiaojin/PubMedQA (pqa_labeled, all 1,000 labelled items in one "train"
split), from which medmo.data.sources.pubmedqa re-derives the 500 test ids with the
repository's own split procedure and checks them against the official split's
fingerprint; a copy where that check fails is evaluated whole and reported as not
comparable (see the source's docstring).
Size checked on shared/data/pubmedqa/test_ground_truth.json (500).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("pubmedqa", family="textqa", source="pubmedqa", split="test", default_data="pubmedqa",
            expected="the PubMedQA data folder (ori_pqal.json, test_ground_truth.json), openlifescienceai/pubmedqa "
                     "or qiaojin/PubMedQA pqa_labeled",
            description="PubMedQA PQA-L test, yes/no/maybe",
            size=500, url="https://github.com/pubmedqa/pubmedqa", licence="MIT",
            size_checked="shared/data/pubmedqa/test_ground_truth.json")
