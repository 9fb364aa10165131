"""The task prompts. Grounding wording follows MedMO (DESIGN.md); the VQA wordings, the
multiple-choice frame and the report wording are MedEvalKit's (utils/question_formats.py)
so scores are comparable with published tables. Where medmo's prompt is not MedEvalKit's:
- option lines: medmo writes "A. text" for every multiple-choice benchmark. That is
  MedEvalKit's form for MedQA, MedMCQA, MedXpertQA and OmniMedVQA only; its PubMedQA,
  Medbullets and SuperGPQA loaders write "A.text", PMC-VQA passes the CSV's "A:text".
- MMMU-Med: MedEvalKit uses MMMU's own layout ("(A) option" lines) and the first image
  only; `mmmu_prompt` renders it and the paper protocol selects it (medmo's default for
  MMMU is the generic frame with every image).
A benchmark records PROMPT_VERSION so a change here shows up in results.json.
"""
from __future__ import annotations

PROMPT_VERSION = "1"

GROUND_ALL_CELLS = "Detect and localize all cells in the image."
GROUND_TARGET = "Locate the {target} in the image. Output the bounding box coordinates."
# Grounding benchmarks (NIH ChestX-ray14, DeepLesion, Bacteria, Cell, MedSG-Bench): every
# box in the image, answered in MedMO's `Label <box>[[x1, y1, x2, y2], ...]</box>` on the
# 0-1000 grid. MEDSG_SUFFIX replaces MedSG-Bench's Qwen2-VL format line for grid models.
GROUND_ALL = "Detect and localize all {target} in the image."
MEDSG_SUFFIX = " Answer with the bounding box coordinates."

# GRPO's reasoning format (GRPOConfig.reasoning), appended to every stage-4 prompt: the
# answer after the think block is what every reward reads (medmo.train.rewards).
REASONING = ("First think step by step inside <think> </think>, then give the final answer after </think>, "
             "in the format asked above.")

# Inference for people (`medmo infer`, `medmo serve`): a report asked for in the two
# sections `medmo.infer.split_report` reads back.
REPORT_SECTIONS = ("Please write the radiology report for this image, with two sections. "
                   "Return it in this format: Findings: ... Impression: ...")

# Report generation benchmarks (MIMIC-CXR, CheXpert Plus, IU-Xray): MedEvalKit's wording,
# braces included and never .format()-ed. CAPTION: captioning sources (ROCO, PMC-OA);
# MEDTRINITY: MedTrinity-25M's multigranular descriptions (medmo's wording).
REPORT = ("You are a helpful assistant. Please generate a report for the given images, including both findings "
          "and impressions. Return the report in the following format: Findings: {} Impression: {}.")
CAPTION = "Please write a caption for this medical image."
MEDTRINITY = ("Describe this medical image in detail: the modality, the organ and region shown, "
              "any abnormality and where it is, and what it suggests.")

# VQA and the multiple-choice frame, MedEvalKit's wording (utils/question_formats.py), so
# published tables stay comparable. The *_BOXED variants are its "reasoning" wording.
VQA_YES_NO = "{question}\nPlease output 'yes' or 'no'(no extra output)."
VQA_YES_NO_BOXED = "{question}\nPlease output \"yes\" or \"no\" and put the answer in one \"\\boxed{{}}\"."
VQA_CLOSED = "{question}\nAnswer the question using a single word or phrase."
VQA_CLOSED_BOXED = "{question}\nAnswer the question using a single word or phrase and put the answer in one \"\\boxed{{}}\"."
VQA_OPEN = "{question}\nPlease answer the question concisely."
VQA_OPEN_BOXED = "{question}\nPlease answer the question concisely and put the answer in one \"\\boxed{{}}\"."
VQA_YES_NO_ZH = "{question}\n请输出'是'或'否'(不要有任何其它输出)。"
VQA_CLOSED_ZH = "{question}\n请用一个单词或者短语回答该问题。"
VQA_OPEN_ZH = "{question}\n请简要回答该问题。"
MCQ = "\nQuestion: {question}\nOptions: \n{options}\nAnswer with the option's letter from the given choices directly."
MCQ_BOXED = ("\nQuestion: {question}\nOptions: \n{options}\n"
             "Answer with the option's letter from the given choices and put the letter in one \"\\boxed{{}}\".")
MCQ_OPTION = "{letter}. {text}"  # one option line, joined with "\n"; the form of some MedEvalKit loaders only (above)

# MMMU's own layout, as MedEvalKit's MMMU evaluation builds it (utils/MMMU/data_utils.py,
# construct_prompt): the question, a blank line, one "(A) option" line per option, then the
# instruction. The whitespace is what MedEvalKit sends, its template's indentation included
# (MMMU_GAP), so the paper protocol's prompt is the same string. Open questions get the
# short-answer instruction.
MMMU_OPTION = "({letter}) {text}\n"
MMMU_GAP = "\n\n        "
MMMU_MCQ_INSTRUCTION = "Answer with the option's letter from the given choices directly."
MMMU_OPEN_INSTRUCTION = "Answer the question using a single word or phrase."


def mmmu_prompt(question: str, choices: dict[str, str] | None = None) -> str:
    """MMMU's layout (see above) for a multiple-choice question (`choices` letter -> text)
    or, without choices, an open one. The question is passed as MMMU writes it."""
    if not choices:
        return f"\n{question}{MMMU_GAP}{MMMU_OPEN_INSTRUCTION}"
    options = "".join(MMMU_OPTION.format(letter=k, text=v) for k, v in choices.items())
    return f"\n{question}\n\n{options}{MMMU_GAP}{MMMU_MCQ_INSTRUCTION}"
