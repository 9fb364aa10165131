"""MedSG-Bench, task "multi_view" (multi-view grounding):
find in another view the structure boxed in one view.
Paper: MedSG-Bench (medical image-sequence grounding, 2025); data CC-BY-4.0 at
huggingface.co/MedSG-Bench. Data: the benchmark's test JSON(s) + images, via
medmo.data.sources.medsg_bench (task "multi_view" only).

Coordinates and modes: see medmo.eval.benchmarks._grounding.register_medsg (grid
responses; ground truth in pixels of the item's `size` image).
"""
from medmo.eval.benchmarks._grounding import register_medsg

register_medsg("multi_view", "find in another view the structure boxed in one view",
               size_checked="unverified: no MedSG-Bench multi_view data in shared/data")
