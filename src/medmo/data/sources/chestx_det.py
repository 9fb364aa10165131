"""ChestX-Det thoracic findings (boxes + polygons, JSON) -> grounding records.

Release: https://github.com/Deepwise-AILab/ChestX-Det-Dataset (Lian et al., "A
Structure-Aware Relation Network for Thoracic Diseases Detection and Segmentation",
IEEE TMI 2021; ChestX-Det10: Liu et al., arXiv:2006.10550). Licence: Apache-2.0
(the repository's LICENSE); cite the papers. The 3,578 images are NIH ChestX-ray14 PNGs
(NIH: no restrictions, attribution).

Layout (the repository's README and JSON files; images from train_data.zip / test_data.zip):

    ChestX_Det_train.json, ChestX_Det_test.json
        [{"file_name": "36302.png", "syms": ["Effusion"], "boxes": [[799, 666, 937, 761]],
          "polygons": [[[799, 678], [799, 678], ...]]}, ...]
    train/36199.png ...  test/36302.png ...      1024x1024 (also found under train_data/,
                                                 test_data/ or next to the JSON)

Coordinates: "boxes" are [x1, y1, x2, y2] integer pixels, left-top and right-bottom,
used as continuous corners. They are the published boxes, not re-derived from the
polygons: 97.5% equal the polygon's vertex extent (36302: x 799..937, y 666..761), the
rest are small findings the annotators padded to about 20x20 px (checked on both JSON
files of commit d82eb07). 13 classes mapped through the shared vocabulary ("Effusion"
-> "Pleural effusion", "Diffuse Nodule" -> "Diffuse nodule"). Image sizes from the PNG
headers. One record per (image, class), "Locate the <class> in the image. ..." (5,165
train and 1,172 test records). Images with no findings (empty syms) give no record
(no_finding); a syms/boxes length mismatch is malformed_entry. Split: the
release's train / test files. On the release's two JSON files (commit d82eb07, with
stand-in PNGs) this converter keeps 5,165 train and 1,172 test records and drops only
611 images without findings. The images are NIH ChestX-ray14 images (renamed): before
evaluating on the NIH box benchmark, run `medmo data overlap` on the mix.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterator

from medmo.data.labels import canonical_label
from medmo.data.schema import Record
from medmo.data.sources import Drops, check_utf8, register_source, require_path
from medmo.data.sources._grounding import check_box, grounding_record
from medmo.data.sources._qa import read_rows
from medmo.data.sources.masks import image_size
from medmo.model.prompts import GROUND_TARGET

FILES = {"train": "ChestX_Det_train.json", "test": "ChestX_Det_test.json"}


def _locate(folder: Path, part: str, name: str) -> Path | None:
    for base in (folder / part, folder / f"{part}_data", folder / f"{part}_data" / part, folder):
        if (base / name).is_file():
            return base / name
    return None


@register_source("chestx_det", tasks=("grounding",), modality="xray", licence="Apache-2.0 (annotations); NIH images",
                 url="https://github.com/Deepwise-AILab/ChestX-Det-Dataset", splits={"train": 5165, "test": 1172})
def convert(raw: str | Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the ChestX-Det folder (ChestX_Det_train.json, ChestX_Det_test.json, train/, test/)")
    folder = raw if raw.is_dir() else raw.parent
    found = {part: folder / name for part, name in FILES.items() if (folder / name).is_file()}
    if not found:
        raise FileNotFoundError(f"{folder}: no ChestX_Det_train.json or ChestX_Det_test.json")
    for part, path in found.items():
        if split is not None and part != split:
            continue
        for k, entry in enumerate(read_rows(path)):
            where = f"{path.name}[{k}]"
            with drops.guard(where):
                if "_malformed" in entry:
                    drops.add(entry["_reason"], entry["_malformed"])
                    continue
                check_utf8(entry)
                name, syms, corners = entry["file_name"], entry["syms"], entry["boxes"]
                if not isinstance(syms, list) or not isinstance(corners, list) or len(syms) != len(corners):
                    drops.add("malformed_entry", f"{where}: syms and boxes differ in length")
                    continue
                if not syms:
                    drops.add("no_finding", name)
                    continue
                image = _locate(folder, part, name)
                if image is None:
                    drops.add("image_missing", name)
                    continue
                size = image_size(image)
                by_label = defaultdict(list)
                for sym, xyxy in zip(syms, corners):
                    label = canonical_label(sym)
                    box = check_box(xyxy, *size, drops, f"{where} {sym}", label)
                    if box is not None:
                        by_label[label].append(box)
                for label, boxes in sorted(by_label.items()):
                    yield grounding_record(
                        rid=f"chestx_det/{part}/{Path(name).stem}/{label.lower().replace(' ', '_')}",
                        source="chestx_det", split=part, modality="xray", images=[str(image)],
                        prompt=GROUND_TARGET.format(target=label.lower()),
                        boxes=boxes, image_size=size, meta={"file_name": name},
                    )
