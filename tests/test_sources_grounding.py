"""Grounding converters: real release files where shared/data has them (NIH, DeepLesion,
MedSG-Bench, DSB2018 masks), small files in the exact release format otherwise (COCO,
YOLO, masks layouts), and the one box policy every converter shares."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medmo.boxes import Box, format_boxes
from medmo.data.sources import Drops, get_source, source_names
from medmo.data.sources._grounding import check_box

GROUNDING_SOURCES = ("nih_chestxray14", "deeplesion", "medsg_bench", "coco", "yolo", "masks")


def convert(name, raw, **kw):
    drops = Drops()
    return list(get_source(name).convert(raw, drops, **kw)), drops


def test_all_grounding_sources_registered():
    for name in GROUNDING_SOURCES:
        assert name in source_names()
        assert get_source(name).tasks == ("grounding",)
        assert "licen" in get_source(name).doc.lower()  # every converter states licence/access


# ------------------------------------------------------------------- box policy

CHECK_CASES = [
    # (xyxy, expected kept box or None, counted reason)
    ([10, 10, 20, 20], [10, 10, 20, 20], None),                     # inside: kept as is
    ([20, 20, 10, 10], [10, 10, 20, 20], None),                     # reversed corners: normalized
    ([-5, 10, 20, 120], [0, 10, 20, 100], "box_clamped_to_image"),  # partly outside: clamped, kept
    ([120, 10, 130, 20], None, "box_outside_image"),                # entirely right of the image
    ([10, 10, 10, 20], None, "box_degenerate"),                     # zero width
    (["a", 1, 2, 3], None, "box_malformed"),                        # not numbers
    ([1, 2, 3], None, "box_malformed"),                             # three numbers
    ([0, 0, float("nan"), 5], None, "box_malformed"),               # NaN
]


@pytest.mark.parametrize("xyxy,kept,reason", CHECK_CASES)
def test_check_box(xyxy, kept, reason):
    drops = Drops()
    box = check_box(xyxy, 100, 100, drops, "row 1")
    assert (box.as_list() if box else None) == kept
    assert dict(drops.counts) == ({reason: 1} if reason else {})


# ------------------------------------------------------------------- NIH ChestX-ray14 (real file)


def test_nih_real_file(shared_data):
    recs, drops = convert("nih_chestxray14", shared_data / "nih_chestxray14")
    assert drops.total == 0
    assert sum(len(r.answer["boxes"]) for r in recs) == 984  # the official count
    assert len({r.meta["image_index"] for r in recs}) == 880
    assert {r.meta["finding"] for r in recs} == {"Atelectasis", "Cardiomegaly", "Effusion", "Infiltrate", "Mass",
                                                  "Nodule", "Pneumonia", "Pneumothorax"}
    # first data row: 00013118_008.png,Atelectasis,225.08,547.02,86.78,79.19 (x, y, w, h)
    rec = next(r for r in recs if r.id == "nih_chestxray14/test/00013118_008/atelectasis")
    x1, y1, x2, y2 = rec.answer["boxes"][0]["bbox"]
    assert (x1, y1) == pytest.approx((225.084745762712, 547.019216763771))
    assert (x2 - x1, y2 - y1) == pytest.approx((86.7796610169491, 79.1864406779661))
    assert rec.answer["image_size"] == [1024, 1024]
    assert rec.prompt == "<image>\nLocate the atelectasis in the image. Output the bounding box coordinates."
    grid = Box(x1, y1, x2, y2).to_grid(1024, 1024)
    assert rec.target == "Atelectasis " + format_boxes([grid]) and rec.target.endswith("[[220, 534, 305, 612]]</box>")


def test_nih_header_quirk_and_bad_rows(tmp_path):
    csv = tmp_path / "BBox_List_2017.csv"
    csv.write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
                   "a.png,Mass,10,20,30,40\n"            # good
                   "b.png,Nodule,10,20,x,40\n"           # non-numeric
                   "c.png,Nodule,10,20\n"                # too few fields
                   "d.png,Mass,1000,1000,100,100\n"      # runs off the 1024 image: clamped
                   "e.png,Mass,2000,10,10,10\n")         # outside
    (tmp_path / "train_val_list.txt").write_text("d.png\n")
    recs, drops = convert("nih_chestxray14", tmp_path)
    assert [r.id for r in recs] == ["nih_chestxray14/test/a/mass", "nih_chestxray14/train/d/mass"]
    assert recs[0].answer["boxes"][0]["bbox"] == [10, 20, 40, 60]
    assert recs[1].answer["boxes"][0]["bbox"] == [1000, 1000, 1024, 1024]
    assert dict(drops.counts) == {"malformed_row": 2, "box_clamped_to_image": 1, "box_outside_image": 1}
    assert [r.id for r in convert("nih_chestxray14", tmp_path, split="train")[0]] == ["nih_chestxray14/train/d/mass"]
    csv.write_text("name,label,x,y,w,h\n")
    with pytest.raises(ValueError, match="BBox_List_2017"):
        convert("nih_chestxray14", csv)


# ------------------------------------------------------------------- DeepLesion (real excerpt)


def test_deeplesion_real_excerpt(shared_data):
    recs, drops = convert("deeplesion", shared_data / "deeplesion")
    assert drops.total == 0 and len(recs) == 9
    assert [r.split for r in recs].count("train") == 5 and [r.split for r in recs].count("test") == 4
    rec = next(r for r in recs if r.id == "deeplesion/test/000090_01_01_115")
    assert rec.answer == {"boxes": [{"bbox": [261.437, 211.224, 280.221, 227.613], "label": "abdomen"}],
                          "image_size": [512, 512]}
    assert rec.images[0].endswith("Images_png/000090_01_01/115.png")
    assert rec.meta["hu_offset"] == 32768  # HU = stored pixel - 32768
    assert rec.meta["window_hu"] == [-160, 240] and rec.meta["window_png"] == [32608, 33008]
    assert rec.target.startswith("Lesion <box>[[")
    assert len(convert("deeplesion", shared_data / "deeplesion", split="test")[0]) == 4


# ------------------------------------------------------------------- MedSG-Bench


def test_medsg_train_format_real(shared_data):
    recs, drops = convert("medsg_bench", shared_data / "medsg_bench")
    # Task8_mini: 50 items x 3 question turns; the model-output file is skipped, counted
    assert len(recs) == 150 and {r.split for r in recs} == {"train"}
    assert dict(drops.counts) == {"evaluation_output_file": 1}
    rec = recs[0]
    assert rec.prompt.count("<image>") == 3 and "<|object_ref" not in rec.prompt
    assert rec.answer["boxes"][0]["bbox"] == [92, 150, 164, 224] and rec.answer["image_size"] == [336, 336]
    assert rec.meta["image_index"] == 2
    assert rec.target == "It's in the third image. RightVentricle <box>[[274, 446, 488, 667]]</box>"


def medsg_test_items(tmp_path, n_images=2, with_images=True):
    """One official-format test item per task; images written as 336x336 PNGs."""
    from medmo.data.sources.medsg_bench import TASKS

    img = []
    for k in range(n_images):
        p = tmp_path / f"im{k}.png"
        if with_images:
            Image.new("RGB", (336, 336), (40 * k, 80, 120)).save(p)
        img.append(str(p))
    items = []
    for task in TASKS:
        item = {"task": task, "images": img, "answer": [30, 40, 100, 120],
                "question": "In the first image the lesion is at <|box_start|>(168,0),(336,168)<|box_end|>. "
                            "Where is <|object_ref_start|>it<|object_ref_end|> in the second image?"}
        if task == "multi_view":
            item["size"] = [500, 400]
        items.append(item)
    return items


def test_medsg_test_format(tmp_path):
    items = medsg_test_items(tmp_path)
    items.append({"task": "segmentation", "images": [], "question": "?", "answer": [0, 0, 1, 1]})  # unknown task
    items.append({**items[0], "answer": [400, 400, 500, 500]})                                     # outside 336x336
    (tmp_path / "test.json").write_text(json.dumps(items))
    recs, drops = convert("medsg_bench", tmp_path / "test.json")
    assert len(recs) == 8 and {r.meta["task"] for r in recs} == {i["task"] for i in items[:8]}
    assert dict(drops.counts) == {"unknown_task": 1, "box_outside_image": 1}
    ref = next(r for r in recs if r.meta["task"] == "referring")
    # the pixel box hint becomes MedMO grid syntax; ref markers go
    assert "<box>[[500, 0, 1000, 500]]</box>" in ref.prompt and "Where is it in the second image?" in ref.prompt
    assert ref.target == "it <box>[[89, 119, 298, 357]]</box>"
    mv = next(r for r in recs if r.meta["task"] == "multi_view")
    assert mv.answer["image_size"] == [500, 400]  # multi_view carries its size
    only = convert("medsg_bench", tmp_path / "test.json", tasks=("patch",))[0]
    assert [r.meta["task"] for r in only] == ["patch"]


def test_medsg_reference_predictions(shared_data):
    from medmo.data.sources.medsg_bench import reference_aggregate, reference_predictions

    path = shared_data / "medsg_bench" / "qwen2_5_vl_referring_0410_135934.json"
    raw = json.loads(path.read_text())
    preds = reference_predictions(path)
    assert len(preds) == 1482
    assert preds[5]["response"] == raw[5]["answer"]  # the model's raw text, untouched
    assert preds[5]["answer"]["boxes"][0]["bbox"] == raw[5]["groundtruth"]
    agg = reference_aggregate(path)["referring"]
    assert agg["n"] == 1482 and agg["iou@0.5"] == pytest.approx(92 / 1482)
    assert agg["mean_iou"] == pytest.approx(187.7150475079984 / 1482)  # the file stores a SUM as 'AVE_IOU'
    with pytest.raises(ValueError, match="groundtruth"):  # a training file is not an evaluation output
        reference_predictions(shared_data / "medsg_bench" / "Task8_mini.json")
    with pytest.raises(ValueError, match="aggregate"):
        reference_aggregate(shared_data / "medsg_bench" / "Task8_mini.json")


# ------------------------------------------------------------------- COCO / YOLO / masks (release formats)


def test_coco(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (200, 100)).save(tmp_path / "images" / "a.png")
    Image.new("RGB", (200, 100)).save(tmp_path / "images" / "c.png")
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 100},
                   {"id": 2, "file_name": "missing.png", "width": 200, "height": 100},
                   {"id": 3, "file_name": "c.png", "width": 200, "height": 100}],
        "categories": [{"id": 7, "name": "bacteria"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [190, 90, 20, 20], "iscrowd": 0},  # clamped
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [0, 0, 50, 50], "iscrowd": 1},     # crowd
            {"id": 4, "image_id": 2, "category_id": 7, "bbox": [0, 0, 5, 5]},                     # image missing
            {"id": 5, "image_id": 9, "category_id": 7, "bbox": [0, 0, 5, 5]},                     # unknown image
            {"id": 6, "image_id": 3, "category_id": 7, "bbox": [300, 0, 5, 5]},                   # outside
        ],
    }
    (tmp_path / "instances_val.json").write_text(json.dumps(coco))
    recs, drops = convert("coco", tmp_path)
    assert [r.id for r in recs] == ["coco/val/a"]
    assert recs[0].answer["boxes"] == [{"bbox": [10, 20, 40, 60], "label": "bacteria"},
                                       {"bbox": [190, 90, 200, 100], "label": "bacteria"}]
    assert recs[0].prompt == "<image>\nDetect and localize all bacteria in the image."
    assert recs[0].target == "bacteria <box>[[50, 200, 200, 600], [950, 900, 1000, 1000]]</box>"
    assert dict(drops.counts) == {"box_clamped_to_image": 1, "crowd_annotation": 1, "unknown_image": 1,
                                  "box_outside_image": 1, "image_missing": 1, "image_without_boxes": 1}
    with pytest.raises(ValueError, match="no COCO json"):
        convert("coco", tmp_path / "images")


def test_yolo(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
    Image.new("RGB", (100, 50)).save(tmp_path / "images" / "train" / "a.png")
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.4 0.4\nbad line\n")
    Image.new("RGB", (100, 50)).save(tmp_path / "images" / "val" / "empty.png")   # no label file
    (tmp_path / "labels" / "val" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")   # no image
    (tmp_path / "data.yaml").write_text("names: [rod, coccus]\n")
    recs, drops = convert("yolo", tmp_path)
    assert [r.id for r in recs] == ["yolo/train/a"]
    # centre (50, 25), size (20, 20) -> [40, 15, 60, 35]; the second box runs off the top-left: clamped
    assert [b["label"] for b in recs[0].answer["boxes"]] == ["rod", "coccus"]
    assert [b["bbox"] for b in recs[0].answer["boxes"]] == [pytest.approx([40, 15, 60, 35]), pytest.approx([0, 0, 30, 15])]
    assert recs[0].prompt.endswith("Detect and localize all coccus and rod in the image.")
    assert dict(drops.counts) == {"malformed_line": 1, "box_clamped_to_image": 1, "image_missing": 1,
                                  "image_without_boxes": 1}
    assert convert("yolo", tmp_path, split="val")[0] == []


def test_masks_label_images_and_box_convention(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    labels = np.zeros((20, 30), np.uint16)
    labels[3, 5] = 1               # one pixel -> a 1x1 box [5, 3, 6, 4]
    labels[10:15, 20:28] = 300     # ids need not be contiguous; 16-bit ids survive
    Image.fromarray(labels).save(tmp_path / "masks" / "x.png")
    Image.new("L", (30, 20)).save(tmp_path / "images" / "x.png")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "masks" / "blank.png")
    Image.new("L", (30, 20)).save(tmp_path / "images" / "blank.png")
    Image.fromarray(labels).save(tmp_path / "masks" / "orphan.png")
    recs, drops = convert("masks", tmp_path, label="cell", min_area=1)
    assert [r.id for r in recs] == ["masks/test/x"]
    assert [b["bbox"] for b in recs[0].answer["boxes"]] == [[5, 3, 6, 4], [20, 10, 28, 15]]
    assert recs[0].meta["instance_ids"] == [1, 300] and recs[0].meta["areas"] == [1, 40]
    assert dict(drops.counts) == {"image_without_boxes": 1, "image_missing": 1}
    assert [len(r.answer["boxes"]) for r in convert("masks", tmp_path, min_area=2)[0]] == [1]  # too_small


def test_masks_dsb2018_layouts(tmp_path, shared_data):
    # the stage1_train layout: <id>/images/<id>.png + <id>/masks/<k>.png, one binary mask per instance
    sample = tmp_path / "abc123"
    (sample / "images").mkdir(parents=True)
    (sample / "masks").mkdir()
    Image.new("RGB", (16, 16)).save(sample / "images" / "abc123.png")
    for k, (r, c) in enumerate([(0, 0), (8, 8)]):
        m = np.zeros((16, 16), np.uint8)
        m[r:r + 4, c:c + 6] = 255
        Image.fromarray(m).save(sample / "masks" / f"m{k}.png")
    recs, _ = convert("masks", tmp_path)
    assert [b["bbox"] for b in recs[0].answer["boxes"]] == [[0, 0, 6, 4], [8, 8, 14, 12]]
    # the real DSB2018 image beside its label image (img2d.tif + mask2d.tif): 125 nuclei
    recs, drops = convert("masks", shared_data / "cell_nuclei_dsb2018", label="cell")
    assert len(recs) == 1 and len(recs[0].answer["boxes"]) == 125 and drops.total == 0
    assert recs[0].images[0].endswith("img2d.tif") and recs[0].answer["image_size"] == [512, 512]


def test_medsg_image_paths_found_by_tail(tmp_path):
    # the release's JSON holds absolute paths of the authors' machine; the files sit under the JSON's folder
    (tmp_path / "Task8").mkdir()
    Image.new("RGB", (336, 336)).save(tmp_path / "Task8" / "x.png")
    item = {"task": "referring", "images": ["/root/autodl-tmp/MedSG/Task8/x.png", "/elsewhere/y.png"],
            "question": "Find <|object_ref_start|>Liver<|object_ref_end|>.", "answer": [1, 2, 30, 40]}
    (tmp_path / "t.json").write_text(json.dumps([item]))
    (rec,), _ = convert("medsg_bench", tmp_path / "t.json")
    # not found: named beside the JSON, inside the release (convert would refuse "/elsewhere/y.png" as outside it)
    assert rec.images == [str(tmp_path / "Task8" / "x.png"), str(tmp_path / "y.png")]


def test_yolo_darknet_layout(tmp_path):
    Image.new("RGB", (40, 40)).save(tmp_path / "a.jpg")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "classes.txt").write_text("bacillus\n")
    (rec,), drops = convert("yolo", tmp_path)
    assert rec.answer["boxes"] == [{"bbox": [10, 10, 30, 30], "label": "bacillus"}] and drops.total == 0


def test_medsg_interleaved_image_placeholders_kept(tmp_path):
    item = {"task": "multi_view", "images": ["a.png", "b.png"], "size": [400, 400], "answer": [10, 10, 20, 20],
            "question": "View 1: <image> shows <|box_start|>(0,0),(200,200)<|box_end|>. View 2: <image> where is it?"}
    (tmp_path / "t.json").write_text(json.dumps([item]))
    (rec,), _ = convert("medsg_bench", tmp_path / "t.json")
    assert rec.prompt.startswith("View 1: <image> shows <box>[[0, 0, 500, 500]]</box>. View 2: <image> where is it?")
