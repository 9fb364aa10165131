"""MMLU-Med: the nine MMLU subjects MedEvalKit uses (anatomy, clinical knowledge, college
biology, college medicine, medical genetics, professional medicine, nutrition, virology,
high-school biology), test split. Data: MMLU csv files, a cais/mmlu snapshot or the MedAgents
jsonl. Breakdown by subject. MedEvalKit's own MMLU loader crashes (scoring.py, defect 7).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("mmlu_med", family="textqa", source="mmlu_med", split="test", default_data="mmlu",
            groups=("subject",), expected="MMLU test data (data/test/*_test.csv or cais/mmlu)",
            description="MMLU medical subjects, test")
