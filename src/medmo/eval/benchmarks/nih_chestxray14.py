"""NIH ChestX-ray14 disease localization: 984 boxes of 8 findings on 880 frontal chest
X-rays (1024x1024); paper: Wang et al., CVPR 2017. Data: the release folder with
BBox_List_2017.csv (+ images_NNN/images/), via medmo.data.sources.nih_chestxray14.

One item per (image, finding): "Locate the <finding> in the image. Output the bounding
box coordinates." Coordinates: the response is read on the 0-1000 grid (box_format
"grid", MedMO/Qwen3-VL) and compared in the image's pixels; score = IoU (set IoU when a
finding has several boxes). Breakdown by finding.
"""
from medmo.data.sources import get_source
from medmo.eval.benchmarks._grounding import register_grounding

register_grounding(
    "nih_chestxray14", default_data="nih_chestxray14", groups=("finding",),
    load_records=lambda path, drops: list(get_source("nih_chestxray14").convert(path, drops)),
    expected="the NIH ChestX-ray14 folder with BBox_List_2017.csv (and images_NNN/images/)",
    description="NIH ChestX-ray14 boxes, 8 findings; mean IoU, IoU@0.3/0.5/0.7",
    size=984, url="https://nihcc.app.box.com/v/ChestXray-NIHCC", licence="NIH, unrestricted with attribution",
    size_checked="shared/data/nih_chestxray14/BBox_List_2017.csv (984 image-finding items)",
)
