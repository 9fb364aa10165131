"""OmniMedVQA, open-access part (multiple choice over 12 modalities); paper: Hu et al., CVPR
2024. Data: the release folder (QA_information/Open-access/*.json + Images/).
Breakdowns by modality and question type, as MedEvalKit reports them.
Size: not declared; the release's 88,996 questions include the restricted-access part and
the open-access count could not be checked here (no OmniMedVQA data in shared/data).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("omnimedvqa", family="vqa", source="omnimedvqa", split="test", default_data="omnimedvqa",
            groups=("modality_type", "question_type"), expected="the OmniMedVQA folder (QA_information/, Images/)",
            description="OmniMedVQA open-access, multiple choice",
            url="https://huggingface.co/datasets/foreverbeliever/OmniMedVQA",
            licence="per source dataset (research use)",
            size_checked="unverified: open-access count not published in a source checked here")
