"""DeepLesion lesion detection on CT key slices (32,735 lesions, 512x512); paper: Yan et
al., J. Med. Imaging 2018. Data: the release folder with DL_info.csv and Images_png/, via
medmo.data.sources.deeplesion; evaluation uses the official test split (Train_Val_Test=3).

One item per key slice: "Detect and localize all lesions in the image." Coordinates:
grid (MedMO/Qwen3-VL), compared in pixels; score = set IoU over the slice's lesions.
Images are 16-bit PNGs with HU = pixel - 32768; records carry the annotator's window
(meta.window_png) for the image reader. Breakdown by the number of lesions on the slice.
"""
from medmo.data.sources import get_source
from medmo.eval.benchmarks._grounding import register_grounding


def _load(path, drops):
    records = list(get_source("deeplesion").convert(path, drops, split="test"))
    for r in records:
        r.meta["n_lesions"] = len(r.answer["boxes"])
    return records


register_grounding(
    "deeplesion", default_data="deeplesion", groups=("n_lesions",), load_records=_load,
    expected="the DeepLesion folder with DL_info.csv and Images_png/ (or the CSV itself)",
    description="DeepLesion test key slices; mean IoU, IoU@0.3/0.5/0.7",
    url="https://nihcc.app.box.com/v/DeepLesion", licence="NIH, unrestricted with attribution",
    size_checked="unverified: shared/data holds the CSV header and 9 rows only",
)
