"""OmniMedVQA, open-access part (multiple choice over 12 modalities); paper: Hu et al., CVPR
2024. Data: the release folder (QA_information/Open-access/*.json + Images/).
Breakdowns by modality and question type, as MedEvalKit reports them.
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("omnimedvqa", family="vqa", source="omnimedvqa", split="test", default_data="omnimedvqa",
            groups=("modality_type", "question_type"), expected="the OmniMedVQA folder (QA_information/, Images/)",
            description="OmniMedVQA open-access, multiple choice")
