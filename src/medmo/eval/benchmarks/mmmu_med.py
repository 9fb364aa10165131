"""MMMU health & medicine, validation (150 questions, 30 in each of 5 subjects); paper: Yue
et al., CVPR 2024. Data: a MMMU/MMMU hub snapshot (one folder per subject). Breakdown by
subject.

Layouts: by default medmo's generic multiple-choice prompt with every image; the paper
protocol loads with `layout="mmmu"` (`paper_options`): MMMU's own "(A) option" layout
and the first image only, as MedEvalKit evaluates it (medmo.data.sources.mmmu_med,
medmo.model.prompts.mmmu_prompt). `load(data, layout="mmmu")` selects it directly.
Size: MMMU's validation split has 30 questions per subject (900 over 30 subjects, per the
MMMU card); no MMMU data is in shared/data, so it is not checked here.
"""
from medmo.data.sources.mmmu_med import SUBJECTS
from medmo.eval.benchmarks._qa import register_qa

register_qa("mmmu_med", family="vqa", source="mmmu_med", split="validation", default_data="mmmu",
            groups=("subject",), expected="a MMMU/MMMU snapshot with the five health subject folders",
            description="MMMU health & medicine subjects, validation",
            size=150, subsets={"subject": dict.fromkeys(SUBJECTS, 30)}, paper_options={"layout": "mmmu"},
            url="https://huggingface.co/datasets/MMMU/MMMU", licence="Apache-2.0",
            size_checked="unverified: the MMMU card's 30 validation questions per subject")
