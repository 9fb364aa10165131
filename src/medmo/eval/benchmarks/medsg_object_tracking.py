"""MedSG-Bench, task "object_tracking" (object tracking):
follow a boxed object through an image sequence.
Paper: MedSG-Bench (medical image-sequence grounding, 2025); data CC-BY-4.0 at
huggingface.co/MedSG-Bench. Data: the benchmark's test JSON(s) + images, via
medmo.data.sources.medsg_bench (task "object_tracking" only).

Coordinates and modes: see medmo.eval.benchmarks._grounding.register_medsg (grid
responses; ground truth in pixels of the 336x336 image).
"""
from medmo.eval.benchmarks._grounding import register_medsg

register_medsg("object_tracking", "follow a boxed object through an image sequence",
               size_checked="unverified: no MedSG-Bench object_tracking data in shared/data")
