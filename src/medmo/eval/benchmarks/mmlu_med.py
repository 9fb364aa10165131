"""MMLU-Med: the nine MMLU subjects MedEvalKit uses (anatomy, clinical knowledge, college
biology, college medicine, medical genetics, professional medicine, nutrition, virology,
high-school biology), test split, 1,871 questions. Data: MMLU csv files, a cais/mmlu
snapshot or the MedAgents jsonl (six subjects only: reported as partial). Breakdown by
subject. MedEvalKit's own MMLU loader crashes (scoring.py, defect 7).
Size: the subject list is MedEvalKit's (utils/MMLU/MMLU.py); the six MedAgents subjects'
counts (1,089) are checked on shared/data/mmlu/test.jsonl; nutrition 306, virology 166
and high_school_biology 310 are MMLU's test-file sizes, not checked here.
"""
from medmo.eval.benchmarks._qa import register_qa

SUBJECT_SIZES = {"anatomy": 135, "clinical_knowledge": 265, "college_biology": 144, "college_medicine": 173,
                 "medical_genetics": 100, "professional_medicine": 272, "nutrition": 306, "virology": 166,
                 "high_school_biology": 310}

register_qa("mmlu_med", family="textqa", source="mmlu_med", split="test", default_data="mmlu",
            groups=("subject",), expected="MMLU test data (data/test/*_test.csv or cais/mmlu)",
            description="MMLU medical subjects, test",
            size=1871, subsets={"subject": SUBJECT_SIZES}, url="https://huggingface.co/datasets/cais/mmlu",
            licence="MIT", size_checked="unverified in part: 6 of 9 subjects checked on shared/data/mmlu")
