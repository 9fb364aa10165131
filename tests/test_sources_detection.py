"""Stage-2 detection sources (issue 16): each converter on a tiny fixture in its release's
real layout (tests/fixtures/<source>/), checking record counts, pixel boxes and their
coordinate convention, splits, bad rows counted, and the shared label vocabulary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from medmo.data.labels import canonical_label, canonical_names, load_vocabulary
from medmo.data.sources import Drops, get_source
from medmo.data.sources._grounding import seeded_split
from medmo.data.sources.masks import MIN_COMPONENT_AREA, component_boxes, foreground

FIXTURES = Path(__file__).parent / "fixtures"


def convert(name, raw=None, **kw):
    drops = Drops()
    return list(get_source(name).convert(raw if raw is not None else FIXTURES / name, drops, **kw)), drops


def boxes_of(rec):
    return [b["bbox"] for b in rec.answer["boxes"]]


# ------------------------------------------------------------------- vocabulary (data, not code)

VOCAB_CASES = [
    ("Nodule/Mass", "Nodule"),        # VinDr-CXR merges the two: one label with NIH's Nodule
    ("lung nodule", "Nodule"),
    (" LUNG_NODULE ", "Nodule"),      # case, "_" and spaces ignored
    ("Infiltrate", "Infiltration"),   # NIH's spelling -> VinDr's
    ("Effusion", "Pleural effusion"),
    ("ILD", "Interstitial lung disease"),
    ("ObsoletePulmonaryTuberculosis", "Latent tuberculosis"),  # TBX11K's category name
    ("RBC", "Red blood cell"),
    ("erythrocytes", "Red blood cell"),
    ("Something new", "Something new"),  # not in the table: kept as spelled
]


@pytest.mark.parametrize("name,expected", VOCAB_CASES)
def test_canonical_label(name, expected):
    assert canonical_label(name) == expected


def test_vocabulary_refuses_an_alias_under_two_names(tmp_path):
    table = tmp_path / "labels.yaml"
    table.write_text(yaml.safe_dump({"Nodule": ["lung nodule"], "Mass": ["Lung-Nodule"]}, sort_keys=False))
    with pytest.raises(ValueError, match="both 'Nodule' and 'Mass'"):
        load_vocabulary(table)
    table.write_text("Nodule: lung nodule\n")
    with pytest.raises(ValueError, match="list of aliases"):
        load_vocabulary(table)


def test_existing_grounding_sources_use_the_vocabulary(shared_data):
    recs, _ = convert("nih_chestxray14", shared_data / "nih_chestxray14")
    labels = {b["label"] for r in recs for b in r.answer["boxes"]}
    assert "Infiltration" in labels and "Pleural effusion" in labels and "Infiltrate" not in labels
    assert labels <= canonical_names()
    recs, _ = convert("deeplesion", shared_data / "deeplesion")
    assert all(r.target.startswith(canonical_label("lesions") + " <box>") for r in recs)


# ------------------------------------------------------------------- shared helpers

def test_seeded_split_is_deterministic_and_near_its_fraction():
    keys = [f"patient{k}" for k in range(4000)]
    splits = [seeded_split(k, 0.1, salt="x") for k in keys]
    assert splits == [seeded_split(k, 0.1, salt="x") for k in keys]   # same id -> same split, always
    assert 0.08 < splits.count("test") / len(keys) < 0.12
    assert splits != [seeded_split(k, 0.1, salt="y") for k in keys]   # the salt gives each source its own draw
    assert seeded_split("a", 0.0) == "train" and seeded_split("a", 1.0) == "test"


COMPONENT_CASES = [
    # (foreground pixels as inclusive (r0, r1, c0, c1) rectangles, expected boxes, dropped areas)
    ([(2, 5, 3, 9)], [[3, 2, 10, 6]], []),                      # exclusive upper corner: cols 3..9 -> 3..10
    ([(0, 0, 0, 0)], [], [1]),                                   # one pixel < 16 px: dropped, counted
    ([(0, 3, 0, 3), (4, 7, 4, 7)], [[0, 0, 8, 8]], []),          # diagonal touch: 8-connected, one lesion
    ([(0, 3, 0, 3), (0, 3, 6, 9)], [[0, 0, 4, 4], [6, 0, 10, 4]], []),  # a gap: two lesions
]


@pytest.mark.parametrize("rects,expected,dropped", COMPONENT_CASES)
def test_component_boxes(rects, expected, dropped):
    mask = np.zeros((12, 12), np.uint8)
    for r0, r1, c0, c1 in rects:
        mask[r0:r1 + 1, c0:c1 + 1] = 255
    kept, small = component_boxes(mask, MIN_COMPONENT_AREA)
    assert [b.as_list() for b, _ in kept] == expected and small == dropped


def test_foreground_thresholds():
    assert foreground(np.array([[0, 1]], np.uint8)).tolist() == [[False, True]]          # 0/1 mask
    assert foreground(np.array([[0, 40, 127, 128, 255]], np.uint8)).tolist() == [[False, False, False, True, True]]


# ------------------------------------------------------------------- binary-mask sources

MASK_SOURCES = [
    # (source, {record id: boxes}, drops, splits)
    ("kvasir_seg",
     {"kvasir_seg/train/cju0qkwl35piu0993l0dewei2": [[10, 5, 25, 20]],   # JPEG mask, rows 5..19 cols 10..24
      "kvasir_seg/train/cju0qoxqj9q6s0835b43399p4": [[3, 2, 15, 12], [24, 16, 46, 30]]},
     {"too_small": 1, "image_missing": 1, "no_finding": 1, "not_in_split_lists": 1}, {"train"}),   # authors' lists
    ("cvc_clinicdb",
     {"cvc_clinicdb/test/1": [[4, 3, 13, 11]], "cvc_clinicdb/test/2": [[0, 0, 24, 18]],   # whole frame
      "cvc_clinicdb/train/26": [[1, 1, 5, 5], [15, 10, 21, 16]]},
     {"mask_size_mismatch": 1}, {"train", "test"}),
    ("isic",
     {"isic/train/ISIC_0000000": [[6, 4, 31, 21]], "isic/train/ISIC_0000001": [[6, 4, 31, 21]],
      "isic/val/ISIC_0012255": [[6, 4, 31, 21]], "isic/test/ISIC_0012236": [[6, 4, 31, 21]]},
     {"image_missing": 1, "too_small": 1}, {"train", "val", "test"}),
    ("busi",
     {"busi/train/benign/benign_(1)": [[5, 4, 21, 13]],
      "busi/train/benign/benign_(4)": [[2, 2, 10, 9], [18, 15, 31, 26]],   # _mask + _mask_1 (an RGB mask)
      "busi/train/malignant/malignant_(1)": [[0, 10, 32, 28]]},
     {"image_missing": 1, "no_finding": 1}, {"train"}),
]


@pytest.mark.parametrize("name,expected,drops,splits", MASK_SOURCES)
def test_mask_sources(name, expected, drops, splits):
    recs, dropped = convert(name)
    assert {r.id: boxes_of(r) for r in recs} == expected
    assert dict(dropped.counts) == drops
    assert {r.split for r in recs} == splits
    for split in splits:
        assert [r.id for r in convert(name, split=split)[0]] == [r.id for r in recs if r.split == split]
    assert all(b["label"] in canonical_names() for r in recs for b in r.answer["boxes"])
    assert all(Path(r.images[0]).is_file() for r in recs)
    assert all(r.task == "grounding" and r.prompt.startswith("<image>\nDetect and localize all") for r in recs)


def test_kvasir_seg_without_the_authors_lists_uses_a_seeded_split(tmp_path):
    import shutil

    shutil.copytree(FIXTURES / "kvasir_seg" / "Kvasir-SEG", tmp_path / "Kvasir-SEG",
                    ignore=shutil.ignore_patterns("train.txt", "val.txt"))
    recs, drops = convert("kvasir_seg", tmp_path)
    assert all(r.split == seeded_split(r.id.rsplit("/", 1)[1], salt="kvasir_seg") for r in recs)
    # the unlisted mask is read now (and found without its image) instead of counted as unlisted
    assert len(recs) == 2 and drops.counts["image_missing"] == 2 and "not_in_split_lists" not in drops.counts


def test_mask_source_labels_and_sizes():
    recs, _ = convert("busi")
    assert {b["label"] for r in recs for b in r.answer["boxes"]} == {"Benign tumor", "Malignant tumor"}
    assert recs[0].answer["image_size"] == [32, 28] and recs[0].target.startswith("Benign tumor <box>[[")
    with pytest.raises(FileNotFoundError, match="benign"):
        convert("busi", FIXTURES / "kvasir_seg")
    with pytest.raises(FileNotFoundError, match="images/ and masks/"):
        convert("kvasir_seg", FIXTURES / "busi")


# ------------------------------------------------------------------- microscopy: bacteria, nuclei

def test_darkfield_bacteria():
    recs, drops = convert("darkfield_bacteria")
    assert {r.id: boxes_of(r) for r in recs} == {
        "darkfield_bacteria/train/001/spirochaete": [[2, 3, 22, 4]],    # a 1-px-tall bacterium: 20 px, kept
        "darkfield_bacteria/train/001/erythrocyte": [[25, 10, 35, 20], [2, 25, 6, 29]],  # 4x4 = 16 px: kept
        "darkfield_bacteria/train/002/erythrocyte": [[5, 5, 9, 9]],
    }
    # 002's one-pixel "bacterium" is too small, so 002 has no bacteria record; 003 holds a value
    # outside 0/1/2; 004 has no image
    assert dict(drops.counts) == {"too_small": 1, "no_finding": 1, "mask_unexpected_values": 1, "image_missing": 1}
    assert recs[0].prompt.endswith("Detect and localize all bacteria in the image.")  # the benchmark's prompt
    assert recs[0].answer["boxes"][0]["label"] == "Spirochaete" and recs[1].target.startswith("Red blood cell <box>")


def test_dsb2018_fixture_and_real_masks(shared_data, tmp_path):
    recs, drops = convert("dsb2018")
    assert [(r.id.split("/")[2][:8], r.split, boxes_of(r)) for r in recs] == [
        ("00071198", "train", [[3, 2, 7, 5], [12, 10, 26, 19]]),   # one box per mask file
        ("003cee89", "train", [[23, 0, 24, 1]]),                     # a one-pixel nucleus is kept (no minimum)
    ]
    assert dict(drops.counts) == {"image_missing": 1}
    with pytest.raises(FileNotFoundError, match="stage1_train"):
        convert("dsb2018", FIXTURES / "busi")
    # the real DSB2018 labels of shared/data, written out in the release layout (one PNG per nucleus)
    import tifffile
    from PIL import Image

    from medmo.data.sources.masks import instance_boxes

    labels = tifffile.imread(shared_data / "cell_nuclei_dsb2018" / "mask2d.tif")
    sample = tmp_path / "stage1_train" / "img2d"
    (sample / "images").mkdir(parents=True)
    (sample / "masks").mkdir()
    Image.fromarray(np.zeros(labels.shape, np.uint8)).save(sample / "images" / "img2d.png")
    for k in np.unique(labels)[1:]:
        Image.fromarray(((labels == k) * 255).astype(np.uint8)).save(sample / "masks" / f"{k:04d}.png")
    recs, drops = convert("dsb2018", tmp_path)
    assert len(recs) == 1 and drops.total == 0 and len(recs[0].answer["boxes"]) == 125
    assert sorted(boxes_of(recs[0])) == sorted(b.as_list() for _, b, _ in instance_boxes(labels))


# ------------------------------------------------------------------- chest X-ray CSV releases

def test_vindr_cxr_readers_merged_in_train_consensus_kept_in_test():
    recs, drops = convert("vindr_cxr")
    got = {r.id.split("/", 1)[1]: (boxes_of(r), r.meta["readers"]) for r in recs}
    assert got == {
        "train/000434271f63a053c4128a0ba6352c7f/aortic_enlargement": ([[25, 5, 35, 15]], [1]),
        # R6 [10,10,20,20] and R9 [12,10,22,20] overlap (IoU 0.67): one box, their mean; R10's stays alone
        "train/000434271f63a053c4128a0ba6352c7f/nodule": ([[11, 10, 21, 20], [40, 30, 50, 40]], [2, 1]),
        "train/000434271f63a053c4128a0ba6352c7f/pleural_effusion": ([[50, 40, 60, 50]], [1]),  # clamped to 60x50
        "test/002a34c58c5b758217ed1f584ccbcfe9/nodule": ([[10, 10, 20, 20], [11, 11, 21, 21]], [1, 1]),  # as published
        "test/002a34c58c5b758217ed1f584ccbcfe9/fibrosis": ([[2, 40, 30, 60]], [1]),
    }
    # "No finding" rows carry no box; R3's "abc" corner; a DICOM not in train/
    assert dict(drops.counts) == {"no_finding_row": 2, "box_clamped_to_image": 1, "box_malformed": 1, "image_missing": 1}
    test = next(r for r in recs if r.id.endswith("test/002a34c58c5b758217ed1f584ccbcfe9/fibrosis"))
    assert test.answer["image_size"] == [40, 64]          # Columns x Rows of that DICOM header
    assert test.meta["class_name"] == "Pulmonary fibrosis" and test.answer["boxes"][0]["label"] == "Fibrosis"
    assert test.images[0].endswith("test/002a34c58c5b758217ed1f584ccbcfe9.dicom")
    assert {r.split for r in convert("vindr_cxr", split="test")[0]} == {"test"}


def test_rsna_pneumonia_xywh_and_seeded_split():
    recs, drops = convert("rsna_pneumonia")
    assert {r.id: boxes_of(r) for r in recs} == {
        "rsna_pneumonia/train/00436515-870c-4b36-a041-de91049b9ab4": [[26, 15, 47, 53], [5, 10, 17, 30]],  # x,y,w,h
        "rsna_pneumonia/train/00704310-78a8-4b38-8475-49f4573b2dbb": [[50, 50, 64, 64]],  # clamped to 64x64
    }
    assert dict(drops.counts) == {"malformed_row": 1, "no_finding": 1, "box_clamped_to_image": 1,
                                  "box_malformed": 1, "image_missing": 1}
    assert all(r.split == seeded_split(r.meta["patient_id"], salt="rsna_pneumonia") for r in recs)
    assert convert("rsna_pneumonia", split="test")[0] == []
    assert recs[0].prompt.endswith("Locate the pneumonia in the image. Output the bounding box coordinates.")


RLE_CASES = [
    # (SIIM run-length string, width, height, foreground (row, col) pixels)
    ("0 1", 3, 2, [(0, 0)]),
    ("1 2", 3, 2, [(1, 0), (0, 1)]),            # column-major: index 1 = (row 1, col 0), 2 = (row 0, col 1)
    ("0 1 3 1", 3, 2, [(0, 0), (0, 2)]),        # offsets count from the previous run's end: 0+1+3 = 4 -> col 2
]


@pytest.mark.parametrize("text,width,height,pixels", RLE_CASES)
def test_siim_rle(text, width, height, pixels):
    from medmo.data.sources.siim_acr import decode_rle

    mask = decode_rle(text, width, height)
    assert mask.shape == (height, width) and sorted(zip(*np.nonzero(mask))) == sorted(pixels)


def test_siim_acr_boxes_from_rle_masks():
    recs, drops = convert("siim_acr")
    assert [(r.split, boxes_of(r)) for r in recs] == [("train", [[20, 3, 30, 10], [2, 15, 8, 20]])]  # two regions
    assert recs[0].meta["regions"] == 2 and recs[0].answer["image_size"] == [32, 24]
    # a 1-px region; an odd-length and an overflowing run; "-1"; a DICOM absent
    assert dict(drops.counts) == {"too_small": 1, "bad_rle": 2, "no_finding": 1, "image_missing": 1}
    with pytest.raises(ValueError, match="EncodedPixels"):
        convert("siim_acr", FIXTURES / "rsna_pneumonia" / "stage_2_train_labels.csv")


# ------------------------------------------------------------------- VOC XML, JSON and polygon releases

def test_bccd_voc_one_based_corners_and_published_split():
    recs, drops = convert("bccd", FIXTURES / "bccd" / "BCCD_Dataset")
    assert {r.id: (r.split, boxes_of(r)) for r in recs} == {
        # VOC <xmin>26</xmin>..<xmax>49</xmax> is pixels 26..49 counted from 1 -> [25, 49); 1..64 is the whole row
        "bccd/train/BloodImage_00000": ("train", [[59, 39, 64, 48], [0, 0, 64, 48], [25, 17, 49, 38]]),
        "bccd/val/BloodImage_00003": ("val", [[20, 20, 29, 29]]),        # reversed corners normalized
    }
    assert [b["label"] for b in recs[0].answer["boxes"]] == ["Platelet", "Red blood cell", "White blood cell"]
    assert recs[0].target.startswith("Platelet <box>[[922, 812, 1000, 1000]]</box> Red blood cell <box>")
    # the platelet runs off the 64x48 image; 00001's only box lacks a corner; 00004 is in no
    # list; 00007 (test) has no JPEG
    assert dict(drops.counts) == {"box_clamped_to_image": 1, "box_malformed": 1, "no_finding": 1,
                                  "not_in_split_lists": 1, "image_missing": 1}
    assert [r.id for r in convert("bccd", FIXTURES / "bccd" / "BCCD_Dataset", split="val")[0]] == ["bccd/val/BloodImage_00003"]


def test_tbx11k_lists_and_classes():
    recs, drops = convert("tbx11k", FIXTURES / "tbx11k" / "TBX11K")
    assert {r.id: boxes_of(r) for r in recs} == {
        "tbx11k/train/tb0003": [[100.5, 199, 180.25, 300], [299, 99, 340, 160]],   # float VOC corners, 1-based
        "tbx11k/val/tb0004": [[0, 0, 512, 512]],
    }
    assert [b["label"] for b in recs[0].answer["boxes"]] == ["Active tuberculosis", "Latent tuberculosis"]
    assert recs[0].answer["image_size"] == [512, 512] and recs[0].images[0].endswith("imgs/tb/tb0003.png")
    # healthy and sick images have no XML; tb0009's XML is truncated; tb0005's PNG is absent
    assert dict(drops.counts) == {"no_finding": 2, "xml_unreadable": 1, "image_missing": 1}
    assert {r.split for r in convert("tbx11k", FIXTURES / "tbx11k" / "TBX11K", split="val")[0]} == {"val"}
    with pytest.raises(FileNotFoundError, match="TBX11K_train.txt"):
        convert("tbx11k", FIXTURES / "bccd")


def test_chestx_det_boxes_per_class():
    recs, drops = convert("chestx_det")
    assert {r.id: boxes_of(r) for r in recs} == {
        "chestx_det/train/36201/nodule": [[30, 10, 38, 18]],
        "chestx_det/train/36201/pleural_effusion": [[2, 30, 20, 44], [40, 30, 64, 48]],   # two "Effusion" boxes
        "chestx_det/test/36302/pleural_thickening": [[50, 40, 64, 48]],                  # clamped to 64x48
    }
    assert recs[1].prompt.endswith("Locate the pleural effusion in the image. Output the bounding box coordinates.")
    # 36199 has no finding; 36210 lists two syms for one box; 36300.png is not in train/
    assert dict(drops.counts) == {"no_finding": 1, "malformed_entry": 1, "image_missing": 1, "box_clamped_to_image": 1}
    assert [r.split for r in convert("chestx_det", split="test")[0]] == ["test"]


def test_monuseg_polygon_extents():
    recs, drops = convert("monuseg")
    assert {r.id: boxes_of(r) for r in recs} == {
        "monuseg/train/TCGA-18-5592-01Z-00-DX1": [[3.5, 2.25, 9, 8.75], [20, 20, 31.5, 34], [38, 30, 40, 36]],
        "monuseg/test/TCGA-2Z-A9J9-01A-01-TS1": [[1, 2, 8, 9]],
    }
    assert recs[0].meta["nuclei"] == 3 and recs[0].answer["image_size"] == [40, 36]
    # a two-vertex region; a nucleus past the tile edge; a tile missing; a vertex with X="x"
    assert dict(drops.counts) == {"bad_polygon": 1, "box_clamped_to_image": 1, "image_missing": 1, "box_malformed": 1}
    assert [r.split for r in convert("monuseg", split="test")[0]] == ["test"]


# ------------------------------------------------------------------- 2-D slices of 3-D label volumes

VOLUME_SOURCES = [
    # (source, {record id: boxes}, drops). The fixture case: a CT of -100 HU with a 60 HU organ
    # and 200 HU tumours; tumour 1 spans 3 slices (largest, 7x8 px, in the middle one), tumour 2
    # lies on one slice (6x5 px), tumours 3 and 4 (12 px, 4 px) are below the 16-px minimum
    ("msd_liver",   # stored with x and y flipped (an LPS-like affine): RAS+ and rot90 undo it
     {"msd_liver/train/liver_0/z0002": [[15, 3, 22, 11]], "msd_liver/train/liver_0/z0004": [[4, 12, 10, 17]]},
     # tumour 3 shares tumour 1's slice, so it is also a too-small cross-section there;
     # liver_1 has no label volume, liver_2 no tumour, liver_3 an unreadable label volume
     {"lesion_too_small": 2, "too_small": 1, "label_missing": 1, "no_finding": 1, "volume_unreadable": 1}),
    ("kits19",      # stored (z, y, x) with z pointing down: the slice order is reversed
     {"kits19/train/case_00000/z0001": [[4, 12, 10, 17]], "kits19/train/case_00000/z0003": [[15, 3, 22, 11]]},
     {"lesion_too_small": 2, "too_small": 1, "label_missing": 1}),   # case_00210 is a test case: no segmentation
]


@pytest.mark.parametrize("name,expected,drops", VOLUME_SOURCES)
def test_volume_slices(name, expected, drops, tmp_path):
    from PIL import Image

    recs, dropped = convert(name, image_dir=tmp_path)
    assert {r.id: boxes_of(r) for r in recs} == expected
    assert dict(dropped.counts) == drops
    for rec in recs:
        # the written slice shows the tumour exactly inside its box (orientation and windowing agree
        # with the boxes): 200 HU is ~236 in the abdomen window, the organ ~140, nothing else as bright
        pixels = np.asarray(Image.open(rec.images[0]))
        assert Path(rec.images[0]).parent == tmp_path and pixels.shape[::-1] == tuple(rec.answer["image_size"])
        x1, y1, x2, y2 = (int(v) for v in boxes_of(rec)[0])
        assert (pixels[y1:y2, x1:x2] > 220).all()
        assert (pixels > 220).sum() == (x2 - x1) * (y2 - y1) + (12 if rec.meta["slice_index"] in (2, 3) else 0)
    again, _ = convert(name, image_dir=tmp_path)
    assert [r.images for r in again] == [r.images for r in recs]   # content-addressed: a re-run writes nothing new
    assert convert(name, image_dir=tmp_path, split="test")[0] == []  # the one labelled case is seeded into train


def test_chosen_slices_rule():
    from medmo.data.sources._volumes import chosen_slices

    vol = np.zeros((10, 10, 5), bool)
    vol[0:4, 0:4, 1] = vol[0:5, 0:5, 2] = True    # one lesion: 16 then 25 px -> slice 2
    vol[6:10, 6:10, 4] = True                       # another: slice 4
    vol[8:9, 0:2, 0] = True                         # 2 px at most: too small, chooses nothing
    assert chosen_slices(vol, 16) == ([2, 4], [2])
    assert chosen_slices(np.zeros((3, 3, 3), bool), 16) == ([], [])


# ------------------------------------------------------------------- registration and the stage-2 mixture

NEW_SOURCES = ("vindr_cxr", "rsna_pneumonia", "tbx11k", "chestx_det", "siim_acr", "kvasir_seg", "cvc_clinicdb", "isic",
               "busi", "bccd", "monuseg", "dsb2018", "darkfield_bacteria", "msd_liver", "kits19")


@pytest.mark.parametrize("name", NEW_SOURCES)
def test_detection_source_is_registered_with_its_release(name):
    src = get_source(name)
    assert src.tasks == ("grounding",) and not src.importer
    assert src.licence != "see the docstring" and src.url.startswith("http") and src.splits
    doc = src.doc.lower()
    assert "licence" in doc and "layout" in doc and "split" in doc   # release layout, licence, split rule
    assert (FIXTURES / name).is_dir()


@pytest.mark.parametrize("name", NEW_SOURCES)
def test_a_wrong_raw_folder_is_a_clear_error(name, tmp_path):
    with pytest.raises((FileNotFoundError, ValueError), match="expected|no "):
        convert(name, tmp_path)          # an empty folder: says what the release should hold
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert(name, tmp_path / "missing")


def test_stage2_mixture_names_the_detection_sources():
    from medmo.config import load_config
    from medmo.data.mixture import MixtureConfig

    mix = load_config(MixtureConfig, Path(__file__).parents[1] / "recipes" / "data" / "stage2_mix.yaml")
    names = [s.name for s in mix.sources]
    assert set(NEW_SOURCES) <= set(names) and "nih_chestxray14" not in names   # NIH's boxes are a benchmark
    assert all(get_source(n).tasks == ("grounding",) for n in names)
    assert mix.total == 3_000_000 and sum(s.weight for s in mix.sources) * 1000 == mix.total


def test_converted_detection_sources_report_modality_and_body_system(tmp_path):
    """`medmo data convert` then `medmo data stats` on three fixtures: the CLI path writes the 3-D
    slices under OUT/images and stats counts modality and body system for a comparison with the paper."""
    from medmo.data.convert import ConvertConfig, run as convert_run
    from medmo.data.stats import collect

    for name, raw in (("kvasir_seg", FIXTURES / "kvasir_seg"), ("msd_liver", FIXTURES / "msd_liver"),
                      ("vindr_cxr", FIXTURES / "vindr_cxr")):
        convert_run(ConvertConfig(source=name, raw=str(raw), out=str(tmp_path / "mix")))   # one folder, three prefixes
    assert len(list((tmp_path / "mix" / "images").glob("liver_0_z*.png"))) == 2
    stats = collect(tmp_path / "mix")
    assert stats["by_modality"] == {"ct": 2, "endoscopy": 2, "xray": 5}
    assert stats["by_body_system"] == {"GI tract": 2, "abdomen": 2, "chest": 5}


def test_monuseg_reads_the_nested_unzip(tmp_path):
    import shutil

    for name in ("MoNuSeg 2018 Training Data", "MoNuSegTestData"):   # unzipping nests a folder in its namesake
        shutil.copytree(FIXTURES / "monuseg" / name, tmp_path / name / name)
    assert [r.id for r in convert("monuseg", tmp_path)[0]] == [r.id for r in convert("monuseg")[0]]
