"""VQA-RAD test (451 questions: 272 closed / 179 open), radiology VQA; paper: Lau et al.,
Scientific Data 2018. Data: the MEVF folder (testset.json + images/) or the HF copy
flaviagiammarino/vqa-rad. Breakdowns by question_type and image_organ. In medevalkit mode
the closed/open split follows MedEvalKit (yes/no answers are closed: 251/200).
Size checked on shared/data/vqa_rad/testset.json (451).
"""
from medmo.eval.benchmarks._qa import register_qa

register_qa("vqa_rad", family="vqa", source="vqa_rad", split="test", default_data="vqa_rad",
            groups=("question_type", "image_organ"), closed_by="yes_no",
            expected="the VQA-RAD folder with testset.json and images/",
            description="VQA-RAD test, radiology VQA; closed/open accuracy",
            size=451, url="https://osf.io/89kps/ (HF flaviagiammarino/vqa-rad)", licence="CC0 1.0",
            size_checked="shared/data/vqa_rad/testset.json")
