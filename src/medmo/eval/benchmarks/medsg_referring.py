"""MedSG-Bench, task "referring" (referring grounding):
box the region a phrase names, in one of several images.
Paper: MedSG-Bench (medical image-sequence grounding, 2025); data CC-BY-4.0 at
huggingface.co/MedSG-Bench. Data: the benchmark's test JSON(s) + images, via
medmo.data.sources.medsg_bench (task "referring" only).

Coordinates and modes: see medmo.eval.benchmarks._grounding.register_medsg (grid
responses; ground truth in pixels of the 336x336 image).
"""
from medmo.eval.benchmarks._grounding import register_medsg

register_medsg("referring", "box the region a phrase names, in one of several images",
               size=1482, size_checked="shared/data/medsg_bench/qwen2_5_vl_referring_0410_135934.json "
                                       "(a reproduction's outputs on the 1,482 referring test items)")
