"""The task prompts. Grounding wording follows MedMO (DESIGN.md); the VQA, MCQ and
report wordings follow MedEvalKit so scores are comparable with published tables.
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

# VQA and multiple choice, MedEvalKit's wording (utils/question_formats.py), so
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
MCQ_OPTION = "{letter}. {text}"  # one option line; MedEvalKit joins lines with "\n"
