"""Report and caption converters on fixtures written in each release's exact layout (made-up
text: IU-Xray is CC BY-NC-ND, MIMIC-CXR and CheXpert Plus are credentialed), plus the
report section splitter."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmo.data.sources import Drops, get_source
from medmo.data.sources._report import report_text, split_sections

FIX = Path(__file__).parent / "fixtures"


def _convert(name, raw, **kw):
    drops = Drops()
    return list(get_source(name).convert(raw, drops, **kw)), drops


SPLIT_CASES = [
    # (report text, expected findings, expected impression)
    (" FINAL REPORT\n EXAMINATION: CHEST\n\n FINDINGS:\n The heart is normal.\n\n IMPRESSION:\n No acute process.\n",
     "The heart is normal.", "No acute process."),  # MIMIC layout: headers on their own lines, FINAL REPORT banner
    ("Findings: heart normal. Impression: no acute process.", "heart normal.", "no acute process."),  # MedEvalKit's one-line layout
    ("FINDINGS AND IMPRESSION: Lungs clear.", "Lungs clear.", ""),  # combined header counts as findings
    ("FINDINGS: Lungs clear.\nCONCLUSION: Normal.", "Lungs clear.", "Normal."),  # CONCLUSION is an impression alias
    ("PORTABLE CHEST\n\nComparison to prior.\n\nTubes unchanged. No pneumothorax.", "", "Tubes unchanged. No pneumothorax."),  # no headers: last paragraph
    ("There were no findings: lungs clear.", "", "There were no findings: lungs clear."),  # lower-case "findings:" is not a header
    ("FINDINGS: A.\nFINDINGS: B.", "A. B.", ""),  # a repeated section is joined
    ("", "", ""),  # empty report
]


@pytest.mark.parametrize("text,findings,impression", SPLIT_CASES)
def test_split_sections(text, findings, impression):
    s = split_sections(text)
    assert (s["findings"], s["impression"]) == (findings, impression)


def test_split_sections_keeps_other_sections():
    s = split_sections("INDICATION: cough.\nTECHNIQUE: PA.\nFINDINGS: clear.")
    assert s["indication"] == "cough." and s["technique"] == "PA." and s["findings"] == "clear."


def test_iu_xray_r2gen_annotation():
    recs, drops = _convert("iu_xray", FIX / "iu_xray", split="test")
    assert [r.id for r in recs] == ["iu_xray/test/CXR9003_IM-9003", "iu_xray/test/CXR9004_IM-9004"]
    assert dict(drops.counts) == {"empty_report": 1}
    r = recs[0]
    assert r.task == "report" and len(r.images) == 2 and all(Path(p).exists() for p in r.images)
    assert r.prompt.count("<image>") == 2 and "Findings: {} Impression: {}" in r.prompt
    assert r.answer["impression"] == "" and r.target == r.answer["text"] == report_text(r.answer["findings"], "")
    all_recs, _ = _convert("iu_xray", FIX / "iu_xray")
    assert sorted({r.split for r in all_recs}) == ["test", "train", "val"]
    with pytest.raises(ValueError, match="not in annotation.json"):
        _convert("iu_xray", FIX / "iu_xray", split="validation")


def test_iu_xray_medevalkit_test_json(shared_data, tmp_path):
    # MedEvalKit's own file (the population of MedMO's tables): a list of studies, both sections
    recs, drops = _convert("iu_xray", shared_data / "iu_xray_medevalkit", split="test")
    assert len(recs) == 296 and drops.total == 0
    r = recs[0]
    assert r.id == "iu_xray/test/open_i_1020" and r.meta["format"] == "medevalkit"
    assert r.answer["findings"] == "Lung volumes are low. No focal infiltrates. Heart size normal."
    assert r.answer["impression"] == "Hypoinflation with no visible active cardiopulmonary disease."
    assert r.images[0].endswith("images/CXR1020_IM-0017-1001.png") and r.prompt.count("<image>") == 2
    # the file itself works too; a study without either section or without images is counted, not fatal
    rows = [{"id": "a", "image": ["a.png"], "findings": "Clear.", "impression": ""},
            {"id": "b", "image": ["b.png"], "findings": " ", "impression": ""},
            {"id": "c", "image": [], "findings": "x", "impression": "y"}]
    (tmp_path / "test.json").write_text(json.dumps(rows))
    recs, drops = _convert("iu_xray", tmp_path / "test.json")
    assert [r.id for r in recs] == ["iu_xray/test/a"] and dict(drops.counts) == {"empty_report": 1, "malformed_row": 1}
    with pytest.raises(ValueError, match="test split only"):
        _convert("iu_xray", tmp_path, split="train")


def test_iu_xray_openi_xml():
    recs, drops = _convert("iu_xray", FIX / "iu_xray" / "openi" / "ecgen-radiology")
    assert [r.id for r in recs] == ["iu_xray/all/CXR9101", "iu_xray/all/CXR9102"]
    assert dict(drops.counts) == {"empty_report": 1}
    assert recs[0].answer["impression"] == "No acute cardiopulmonary disease." and len(recs[0].images) == 2
    assert all(Path(p).exists() for r in recs for p in r.images)
    assert recs[1].meta["mesh"] == ["Pleural Effusion/right/moderate"]
    with pytest.raises(ValueError, match="no 'test' split"):
        _convert("iu_xray", FIX / "iu_xray" / "openi" / "ecgen-radiology", split="test")


def test_mimic_cxr_studies_views_and_drops():
    recs, drops = _convert("mimic_cxr", FIX / "mimic_cxr")
    assert [r.id for r in recs] == ["mimic_cxr/test/s50000001", "mimic_cxr/test/s50000002", "mimic_cxr/train/s50000003"]
    assert dict(drops.counts) == {"missing_report": 1}
    first = recs[0]
    assert first.meta["views"] == ["PA", "LATERAL"]  # PA first although the CSV lists the lateral first
    assert all(Path(p).exists() for p in first.images)
    assert first.answer["findings"].startswith("The heart size is normal.") and first.answer["impression"] == "No acute cardiopulmonary process."
    assert recs[1].answer["findings"] == "" and recs[1].answer["impression"].startswith("Endotracheal tube")  # last-paragraph fallback
    frontal, _ = _convert("mimic_cxr", FIX / "mimic_cxr", split="test", views="frontal")
    assert [len(r.images) for r in frontal] == [1, 1]
    with pytest.raises(ValueError, match="train, validate, test"):
        _convert("mimic_cxr", FIX / "mimic_cxr", split="val")
    with pytest.raises(FileNotFoundError, match="split.csv"):
        _convert("mimic_cxr", FIX / "chexpert_plus")


def test_chexpert_plus_sections_and_fallback():
    recs, drops = _convert("chexpert_plus", FIX / "chexpert_plus", split="valid")
    assert [r.id for r in recs] == ["chexpert_plus/valid/patient90001/study1/view1_frontal", "chexpert_plus/valid/patient90002/study1/view1_frontal"]
    assert dict(drops.counts) == {"empty_report": 1}
    assert recs[0].answer["impression"] == "No acute change."  # from section_impression
    assert recs[1].answer["findings"] == "Lungs are clear. No effusion."  # section_* empty: split from `report`
    assert all(Path(p).exists() and p.endswith(".png") for r in recs for p in r.images)  # PNG release found
    assert "age" not in recs[0].meta and "sex" not in recs[0].meta
    with pytest.raises(ValueError, match="'train' and 'valid'"):
        _convert("chexpert_plus", FIX / "chexpert_plus", split="test")


def test_medtrinity_parquet(tmp_path):
    recs, drops = _convert("medtrinity", FIX / "medtrinity", image_dir=tmp_path)
    assert len(recs) == 2 and dict(drops.counts) == {"missing_field": 1}
    assert recs[0].task == "report" and recs[0].answer["text"].startswith("The image is a chest CT")
    assert Path(recs[0].images[0]).parent == tmp_path and Path(recs[0].images[0]).exists()
    again, _ = _convert("medtrinity", FIX / "medtrinity", image_dir=tmp_path)
    assert [r.images for r in again] == [r.images for r in recs]  # idempotent image names


def test_roco_github_layout():
    recs, drops = _convert("roco", FIX / "roco", split="test")
    assert [r.id for r in recs] == ["roco/test/ROCO_90001", "roco/test/ROCO_90002"]
    assert dict(drops.counts) == {"malformed_row": 1}  # the caption-less line
    assert recs[0].task == "caption" and recs[0].images[0].endswith("PMC9000001_made-up-g001.jpg")  # name from dlinks.txt
    assert Path(recs[0].images[0]).exists() and recs[0].answer["text"].startswith("Axial CT")
    with pytest.raises(ValueError, match="subset"):
        _convert("roco", FIX / "roco", subset="xray")


def test_pmc_oa_jsonl():
    recs, drops = _convert("pmc_oa", FIX / "pmc_oa", split="test")
    assert [r.id for r in recs] == ["pmc_oa/test/PMC9000001_Fig1_0", "pmc_oa/test/PMC9000002_Fig2_1"]
    assert dict(drops.counts) == {"malformed_row": 1}  # the truncated JSON line
    assert recs[0].meta["pmcid"] == "PMC9000001" and Path(recs[0].images[0]).exists()
    with pytest.raises(FileNotFoundError, match="pmc_oa.jsonl"):
        _convert("pmc_oa", FIX / "roco")


@pytest.mark.parametrize("name", ["iu_xray", "mimic_cxr", "chexpert_plus", "medtrinity", "roco", "pmc_oa"])
def test_wrong_path_says_what_was_expected(name, tmp_path):
    with pytest.raises(FileNotFoundError, match="expected"):
        _convert(name, tmp_path / "missing")


REPORT_SOURCES = {"iu_xray": ("report",), "mimic_cxr": ("report",), "chexpert_plus": ("report",),
                  "medtrinity": ("report",), "roco": ("caption",), "pmc_oa": ("caption",)}


@pytest.mark.parametrize("name,tasks", sorted(REPORT_SOURCES.items()))
def test_registered_with_licence_and_access(name, tasks):
    src = get_source(name)
    assert src.tasks == tasks
    assert "licen" in src.doc.lower() or "agreement" in src.doc.lower()  # every converter states licence/access


def test_data_convert_writes_shards(tmp_path):
    from medmo.data.convert import ConvertConfig, run
    from medmo.data.shards import iter_records

    out = run(ConvertConfig(source="mimic_cxr", raw=str(FIX / "mimic_cxr"), out=str(tmp_path / "out"), check_images="exists"))
    ids = [d["id"] for d, _ in iter_records(out)]
    assert ids == ["mimic_cxr/test/s50000001", "mimic_cxr/test/s50000002", "mimic_cxr/train/s50000003"]


def test_roco_hf_parquet_copy(tmp_path):
    """The Hugging Face copy (eltorio/ROCO-radiology layout): data/<split>-*.parquet with image, image_id, caption."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (32, 32), 128).save(buf, "PNG")
    rows = [{"image": {"bytes": buf.getvalue(), "path": "x.png"}, "image_id": "ROCO_00001", "caption": " Made-up CT caption. "},
            {"image": {"bytes": buf.getvalue(), "path": "y.png"}, "image_id": "ROCO_00002", "caption": ""}]
    (tmp_path / "hf" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "hf" / "data" / "test-00000-of-00001.parquet")
    recs, drops = _convert("roco", tmp_path / "hf", split="test", image_dir=tmp_path / "img")
    assert [r.id for r in recs] == ["roco/test/ROCO_00001"] and recs[0].answer["text"] == "Made-up CT caption."
    assert dict(drops.counts) == {"missing_field": 1} and Path(recs[0].images[0]).exists()
