"""MedSG-Bench, task "referring" (referring grounding):
box the region a phrase names, in one of several images.
Paper: MedSG-Bench (medical image-sequence grounding, 2025); data CC-BY-4.0 at
huggingface.co/MedSG-Bench. Data: the benchmark's test JSON(s) + images, via
medmo.data.sources.medsg_bench (task "referring" only).

Coordinates: medmo renders the question for grid models (box hints rewritten to MedMO's
`<box>[[...]]</box>` on the 0-1000 grid) and reads the response on the grid
(box_format "grid"); ground truth is pixels of the 336x336 image. The MedSG-Bench
reference outputs (Qwen2.5-VL) are pixels of 336x336: score such a file with
`medmo score --box-format pixels` (see medsg_bench.reference_predictions).
Modes: strict = set IoU of all predicted boxes, clamped to the image; medevalkit = the
published MedSG-Bench rule (first predicted box as written, IoU >= t counts), to compare
with published tables.
"""
from medmo.data.sources import get_source
from medmo.eval.benchmarks._grounding import register_grounding

register_grounding(
    "medsg_referring", published_protocol="medsg",
    load_records=lambda path, drops: list(get_source("medsg_bench").convert(path, drops, split="test",
                                                                            tasks=("referring",))),
    expected="MedSG-Bench test JSON(s) with task 'referring' (items: task, images, question, answer)",
    description="MedSG-Bench referring: box the region a phrase names, in one of several images; mean IoU, IoU@0.3/0.5/0.7",
)
