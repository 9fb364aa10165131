"""MMMU health & medicine, validation (150 questions, 5 subjects); paper: Yue et al., CVPR
2024. Data: a MMMU/MMMU hub snapshot (one folder per subject). Breakdown by subject.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("mmmu_med", family="vqa", source="mmmu_med", split="validation", default_data="mmmu",
            groups=("subject",), expected="a MMMU/MMMU snapshot with the five health subject folders",
            description="MMMU health & medicine subjects, validation")
