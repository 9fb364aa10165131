"""The task prompts. Grounding wording follows MedMO (DESIGN.md); the VQA, MCQ and
report wordings follow MedEvalKit so scores are comparable with published tables.
A benchmark records PROMPT_VERSION so a change here shows up in results.json.
"""
from __future__ import annotations

PROMPT_VERSION = "1"

GROUND_ALL_CELLS = "Detect and localize all cells in the image."
GROUND_TARGET = "Locate the {target} in the image. Output the bounding box coordinates."

# Inference for people (`medmo infer`, `medmo serve`): a report asked for in the two
# sections `medmo.infer.split_report` reads back.
REPORT_SECTIONS = ("Please write the radiology report for this image, with two sections. "
                   "Return it in this format: Findings: ... Impression: ...")
