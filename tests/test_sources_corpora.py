"""Instruction, caption and text-QA corpora for stages 1 and 3, each converted from a fixture
in its release's layout (tests/fixtures/<source>/; made-up text, tiny images): record
counts, splits, turns, and every deliberately bad row counted by reason, not raised."""
from __future__ import annotations

from pathlib import Path

import pytest

from medmo.data.schema import IMAGE_TOKEN
from medmo.data.sources import Drops, get_source
from medmo.data.sources._conversation import chat_turns, modality_from_text

FIX = Path(__file__).parent / "fixtures"


def _convert(name, raw, **kw):
    drops = Drops()
    return list(get_source(name).convert(raw, drops, **kw)), drops


CASES = [
    # (source, raw, options, records, splits, assistant turns per record, drops by reason)
    ("pubmedvision", FIX / "pubmedvision", {}, 3, {"train"}, [1, 1, 2],
     {"image_token_mismatch": 1, "bad_turns": 1}),  # 2 tags / 1 image; an answer before any question
    ("pubmedvision", FIX / "pubmedvision", {"part": "instruct"}, 1, {"train"}, [2], {"bad_turns": 1}),
    ("llava_med_alignment", FIX / "llava_med" / "data", {}, 2, {"train"}, [1, 1], {"empty_turn": 1}),
    ("llava_med_instruct", FIX / "llava_med" / "data", {}, 2, {"train"}, [3, 1], {"bad_turns": 1}),  # two user turns in a row
    ("llava_med_instruct", FIX / "llava_med" / "data", {"variant": "10k"}, 1, {"train"}, [3], {}),
    ("quilt_1m", FIX / "quilt_1m", {}, 3, {"train", "val"}, [1, 1, 1], {"missing_field": 1}),  # empty caption
    ("quilt_1m", FIX / "quilt_1m", {"split": "val"}, 1, {"val"}, [1], {}),
    ("quilt_llava", FIX / "quilt_llava", {}, 2, {"train"}, [2, 1], {"bad_turns": 1}),  # conversations not a list
    ("medpix", FIX / "medpix" / "MedPix-2-0", {}, 4, {"train", "dev", "test"}, [1] * 4,
     {"missing_field": 1, "malformed_row": 1}),  # empty Caption; a line that is not JSON
    ("medpix", FIX / "medpix" / "MedPix-2-0", {"split": "train_2"}, 1, {"train_2"}, [1], {"missing_field": 1}),
    ("mimic_ext_vqa", FIX / "mimic_ext_vqa", {}, 5, {"train", "valid", "test"}, [1] * 5,
     {"missing_field": 1}),  # a pre-release row without answer
    ("mimic_ext_vqa", FIX / "mimic_ext_vqa", {"split": "train"}, 3, {"train"}, [1] * 3, {"missing_field": 1}),
    ("mimic_diff_vqa", FIX / "mimic_diff_vqa", {}, 4, {"train", "test"}, [1] * 4,
     {"unknown_study": 1}),  # a reference study missing from mimic_all.csv
    ("rocov2", FIX / "rocov2", {}, 4, {"train", "valid", "test"}, [1] * 4, {"missing_field": 1}),  # empty caption
    ("rocov2", FIX / "rocov2", {"split": "validation"}, 1, {"valid"}, [1], {}),  # the HF name of valid
    ("medquad", FIX / "medquad", {}, 3, {"train"}, [1] * 3,
     {"empty_answer": 1, "malformed_xml": 1}),  # MedlinePlus answers removed by the authors; a truncated file
]


@pytest.mark.parametrize("name,raw,kw,n,splits,turns,dropped", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_counts_splits_turns_and_drops(name, raw, kw, n, splits, turns, dropped):
    recs, drops = _convert(name, raw, **kw)
    assert len(recs) == n
    assert {r.split for r in recs} == splits
    assert [sum(m["role"] == "assistant" for m in r.messages) for r in recs] == turns
    assert dict(drops.counts) == dropped
    assert len({r.id for r in recs}) == n and all(r.source == name for r in recs)
    for r in recs:
        assert sum(m["content"].count(IMAGE_TOKEN) for m in r.messages) == len(r.images)
        assert r.messages[-1]["role"] == "assistant" and r.answer["text"] == r.target


def test_multi_turn_conversation_keeps_every_turn_and_its_image():
    recs, _ = _convert("llava_med_instruct", FIX / "llava_med" / "data")
    r = recs[0]
    assert [m["role"] for m in r.messages] == ["user", "assistant"] * 3
    assert r.messages[0]["content"] == "What type of imaging is shown?\n<image>"  # the release's tag placement is kept
    assert r.meta["turns"] == 3 and r.task == "vqa"
    assert Path(r.images[0]) == (FIX / "llava_med" / "data" / "images" / "9000004_F3.jpg").resolve()
    assert recs[1].messages[0]["content"].startswith("<image>\n")  # a one-image item without a tag gets one


def test_pubmedvision_keeps_every_image_and_maps_modality():
    recs, _ = _convert("pubmedvision", FIX / "pubmedvision")
    two = next(r for r in recs if r.id.endswith("Alignment_VQA_1"))
    assert len(two.images) == 2 and all(Path(p).exists() for p in two.images)
    assert [r.modality for r in recs] == ["ct", "mri", "microscopy"]
    assert two.meta["body_part"] == "Brain" and two.meta["part"] == "alignment"


def test_caption_sources_point_at_existing_images():
    for name, raw in (("quilt_1m", FIX / "quilt_1m"), ("medpix", FIX / "medpix" / "MedPix-2-0"),
                      ("llava_med_alignment", FIX / "llava_med" / "data")):
        recs, _ = _convert(name, raw)
        assert all(r.task == "caption" and Path(r.images[0]).exists() for r in recs), name
    medpix, _ = _convert("medpix", FIX / "medpix" / "MedPix-2-0", split="test")
    assert medpix[0].meta["synpic"] == "synpic990005" and medpix[0].meta["location_category"] == "Spine and Muscles"


def test_rocov2_hf_copy_writes_embedded_images_once(tmp_path):
    recs, drops = _convert("rocov2", FIX / "rocov2" / "hf", split="test", image_dir=tmp_path)
    assert [r.id for r in recs] == ["rocov2/test/ROCOv2_2023_test_000001"] and dict(drops.counts) == {"missing_field": 1}
    assert Path(recs[0].images[0]).parent == tmp_path and Path(recs[0].images[0]).exists()


def test_mimic_ext_vqa_answers_and_closed_questions():
    recs, _ = _convert("mimic_ext_vqa", FIX / "mimic_ext_vqa")
    by_id = {r.id: r for r in recs}
    assert by_id["mimic_ext_vqa/train/1"].answer["text"] == "atelectasis, lung opacity"  # a list answer
    assert by_id["mimic_ext_vqa/train/2"].answer["text"] == "none"  # an empty set
    assert by_id["mimic_ext_vqa/train/0"].answer["closed"] and by_id["mimic_ext_vqa/test/0"].answer["closed"]  # verify, choose
    assert not by_id["mimic_ext_vqa/train/1"].answer["closed"]  # query
    assert Path(by_id["mimic_ext_vqa/train/0"].images[0]).exists()  # image_path is relative to MIMIC-CXR-JPG files/


def test_mimic_diff_vqa_difference_questions_see_both_studies():
    recs, _ = _convert("mimic_diff_vqa", FIX / "mimic_diff_vqa", split="train")
    diff = next(r for r in recs if r.meta["question_type"] == "difference")
    assert len(diff.images) == 2 and "s59000011" in diff.images[0] and "s59000012" in diff.images[1]  # reference first
    assert diff.prompt.count(IMAGE_TOKEN) == 2 and "earlier" in diff.prompt
    assert all(Path(p).exists() for r in recs for p in r.images)
    assert next(r for r in recs if r.meta["question_type"] == "presence").answer["closed"]


def test_medquad_is_text_qa_with_the_whole_answer():
    recs, _ = _convert("medquad", FIX / "medquad")
    r = recs[0]
    assert r.images == [] and r.modality == "text" and r.id == "medquad/train/0009001_1-1"
    assert r.messages[0] == {"role": "user", "content": "What is (are) Made-up Cancer ?"}
    assert "Age is a risk factor." in r.target and recs[1].target == "Surgery & chemotherapy are used."


@pytest.mark.parametrize("conversations,n_images,reason", [
    ([{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}], 0, "image_token_mismatch"),  # tag, no image
    ([{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], 2, "image_token_mismatch"),  # 2 images, no tag
    ([{"from": "human", "value": "q"}], 0, "bad_turns"),  # no reply
    ([{"from": "robot", "value": "q"}, {"from": "gpt", "value": "a"}], 0, "bad_turns"),  # unknown role
    ([{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}], 0, "empty_turn"),
    ([], 0, "bad_turns"),
])
def test_chat_turns_refuses_what_it_cannot_repair(conversations, n_images, reason):
    with pytest.raises(ValueError, match=reason):
        chat_turns(conversations, n_images)


@pytest.mark.parametrize("text,modality", [
    ("Computed Tomography", "ct"), ("CT w/contrast (IV)", "ct"), ("MR - T2 weighted", "mri"), ("MR", "mri"),
    ("Magnetic Resonance Imaging", "mri"), ("X-ray", "xray"), ("Mammography", "xray"), ("Ultrasound", "ultrasound"),
    ("PET-CT", "nuclear"), ("Microscopy Images", "microscopy"), ("Histopathology", "pathology"),
    ("Fundus Photography", "fundus"), ("Endoscopy", "endoscopy"), ("Digital Photography", "photo"),
    ("Dermoscopy", "dermoscopy"), ("", "other"), ("spectacles", "other"),  # short keys match whole words only
])
def test_modality_from_text(text, modality):
    assert modality_from_text(text) == modality


@pytest.mark.parametrize("name,raw,kw", [
    ("pubmedvision", FIX / "pubmedvision", {"split": "test"}),  # train-only releases refuse other splits
    ("llava_med_instruct", FIX / "llava_med" / "data", {"variant": "100k"}),
    ("medpix", FIX / "medpix" / "MedPix-2-0", {"split": "validation"}),
    ("mimic_ext_vqa", FIX / "mimic_ext_vqa", {"split": "val"}),
    ("mimic_diff_vqa", FIX / "mimic_diff_vqa", {"split": "valid"}),
    ("medquad", FIX / "medquad", {"split": "test"}),
    ("rocov2", FIX / "rocov2", {"split": "dev"}),
])
def test_wrong_options_say_what_is_expected(name, raw, kw):
    with pytest.raises(ValueError, match="expected|split"):
        _convert(name, raw, **kw)


@pytest.mark.parametrize("name", ["pubmedvision", "llava_med_alignment", "llava_med_instruct", "quilt_1m", "quilt_llava",
                                  "medpix", "mimic_ext_vqa", "mimic_diff_vqa", "medquad", "rocov2"])
def test_wrong_raw_says_what_was_expected(name, tmp_path):
    with pytest.raises(FileNotFoundError, match="expected"):
        _convert(name, tmp_path)


# ----------------------------------------------- benchmarks' train splits never hold their test
def _bench_folder(name, data, tmp_path):
    """The benchmark's own evaluation records (what `medmo eval` scores), as a records folder."""
    from medmo.data.schema import write_jsonl
    from medmo.eval.benchmarks import get_benchmark

    folder = tmp_path / f"bench_{name}"
    write_jsonl(get_benchmark(name).load(data), folder / "records.jsonl")
    return folder


def _qa_fixture(writer):
    import qa_fixtures

    return lambda tmp: getattr(qa_fixtures, writer)(tmp / writer)


# (benchmark, training-side source, its train fixture, the benchmark's data: shared/data folder or a fixture writer,
#  whether record ids carry the dataset's own item id (qid, PMID, uuid) rather than a row number)
TRAIN_SIDES = [
    ("vqa_rad", "vqa_rad", FIX / "vqa_rad", "vqa_rad", True),  # the official file holds both splits (phrase_type test_*)
    ("slake_en", "slake", FIX / "slake", "slake", True),
    ("path_vqa", "path_vqa", FIX / "path_vqa", _qa_fixture("path_vqa"), False),
    ("pmc_vqa", "pmc_vqa", FIX / "pmc_vqa", _qa_fixture("pmc_vqa"), False),
    ("medqa", "medqa", FIX / "medqa", "medqa", False),
    ("medmcqa", "medmcqa", FIX / "medmcqa", "medmcqa", True),
    ("pubmedqa", "pubmedqa", "pubmedqa", "pubmedqa", True),  # the real 1,000 labelled items: train = the 500 outside test
    ("mimic_cxr", "mimic_cxr", FIX / "mimic_cxr", FIX / "mimic_cxr", True),  # reports: split.csv's train vs test
    ("iu_xray_r2gen", "iu_xray", FIX / "iu_xray", FIX / "iu_xray", True),  # R2Gen's annotation.json train vs test
    ("chexpert_plus", "chexpert_plus", FIX / "chexpert_plus", FIX / "chexpert_plus", True),  # train vs valid
    ("deeplesion", "deeplesion", "deeplesion", "deeplesion", True),  # Train_Val_Test 1 vs 3
]


@pytest.mark.parametrize("bench,source,train_raw,bench_data,native_ids", TRAIN_SIDES, ids=[t[0] for t in TRAIN_SIDES])
def test_no_converter_reads_a_benchmarks_test_split_into_training(bench, source, train_raw, bench_data, native_ids,
                                                                  shared_data, tmp_path):
    import json

    from medmo.data.convert import ConvertConfig, run as convert
    from medmo.data.overlap import OverlapConfig, run as overlap
    from medmo.data.shards import iter_records

    train_raw = shared_data / train_raw if isinstance(train_raw, str) else train_raw
    data = shared_data / bench_data if isinstance(bench_data, str) else bench_data if isinstance(bench_data, Path) \
        else bench_data(tmp_path)
    out = convert(ConvertConfig(source=source, raw=str(train_raw), out=str(tmp_path / "train"), split="train"))
    train = [d for d, _ in iter_records(out)]
    bench_dir = _bench_folder(bench, data, tmp_path)
    tested = [d for d, _ in iter_records(bench_dir)]
    assert train and tested
    assert {d["split"] for d in train} == {"train"} and not {d["split"] for d in tested} & {"train"}
    if native_ids:  # no item of the benchmark comes back under its own id
        assert not {d["id"].split("/", 2)[-1] for d in train} & {d["id"].split("/", 2)[-1] for d in tested}
    report = json.loads((overlap(OverlapConfig(train=str(out), bench=str(bench_dir), min_text_chars=10))
                         / "overlap.json").read_text())
    assert report["train_records_overlapping"] == 0, report["examples"]


def test_the_check_finds_a_test_split_when_one_is_converted(shared_data, tmp_path):
    """The same check on VQA-RAD's test rows (real test questions in the official file) finds them: it can fail."""
    import json

    from medmo.data.convert import ConvertConfig, run as convert
    from medmo.data.overlap import OverlapConfig, run as overlap

    out = convert(ConvertConfig(source="vqa_rad", raw=str(FIX / "vqa_rad"), out=str(tmp_path / "leak"), split="test"))
    report = json.loads((overlap(OverlapConfig(train=str(out), bench=str(_bench_folder("vqa_rad", shared_data / "vqa_rad",
                                                                                           tmp_path)),
                                               min_text_chars=10)) / "overlap.json").read_text())
    assert report["train_records_overlapping"] == 2


def test_vqa_rad_official_file_splits_by_phrase_type():
    train, drops = _convert("vqa_rad", FIX / "vqa_rad", split="train")
    test, _ = _convert("vqa_rad", FIX / "vqa_rad", split="test")
    assert [r.meta["qid"] for r in train] == [9001, 9002, 9003] and dict(drops.counts) == {"missing_field": 1}
    assert [r.meta["qid"] for r in test] == [11, 24] and all(r.meta["phrase_type"].startswith("test_") for r in test)
    assert train[2].answer["text"] == "2" and Path(train[0].images[0]).parent.name == "VQA_RAD Image Folder"


@pytest.mark.parametrize("source,raw,n,dropped", [
    ("slake", FIX / "slake", 3, {"missing_field": 1}),  # no answer_type
    ("medqa", FIX / "medqa", 2, {"answer_not_in_choices": 1}),
    ("medmcqa", FIX / "medmcqa", 2, {"no_answer": 1}),  # cop withheld
    ("pmc_vqa", FIX / "pmc_vqa", 2, {"answer_not_in_choices": 1}),
    ("path_vqa", FIX / "path_vqa", 2, {"missing_field": 1}),  # no image
])
def test_benchmark_sources_train_split_fixtures(source, raw, n, dropped, tmp_path):
    kw = {"image_dir": tmp_path} if source == "path_vqa" else {}
    recs, drops = _convert(source, raw, split="train", **kw)
    assert len(recs) == n and {r.split for r in recs} == {"train"} and dict(drops.counts) == dropped


# ----------------------------------------------------------------- the catalogue
def test_data_sources_prints_every_source_with_licence_and_download_location(capsys):
    from medmo.cli import main
    from medmo.data.sources import SOURCES

    assert main(["data", "sources"]) == 0
    out = capsys.readouterr().out
    datasets, importers = out.split("## Importers")
    named = [SOURCES.get(n) for n in SOURCES.names() if not SOURCES.get(n).importer]
    assert len(named) >= 45  # the paper's 45 datasets (issue 16); importers are not counted
    for src in named:
        line = next((ln for ln in datasets.splitlines() if ln.startswith(f"| {src.name} |")), None)
        assert line, f"{src.name} is not listed"
        assert src.licence != "see the docstring" and src.licence in line, f"{src.name}: no licence registered"
        assert src.url and src.url in line, f"{src.name}: no download location registered"
    assert {ln.split(" | ")[0][2:] for ln in importers.splitlines() if ln.startswith("| ") and "---" not in ln} \
        == {"source", "coco", "yolo", "masks"}
    assert "| vqa_rad | radiology | vqa | CC0 1.0 | https://osf.io/89kps/" in out and "train 1,797, test 451 |" in out


def test_stage1_and_stage3_mixtures_name_the_corpora_and_only_registered_sources():
    from medmo.config import load_config
    from medmo.data.mixture import MixtureConfig
    from medmo.data.sources import get_source

    recipes = Path(__file__).parents[1] / "recipes" / "data"
    named = {}
    for stage in ("stage1", "stage3"):
        mix = load_config(MixtureConfig, recipes / f"{stage}_mix.yaml")
        named[stage] = {s.converter for s in mix.sources}
        for s in mix.sources:
            get_source(s.converter)  # an unknown name raises, listing the registered ones
    corpora = {"pubmedvision", "llava_med_alignment", "llava_med_instruct", "quilt_1m", "quilt_llava", "medpix",
               "mimic_ext_vqa", "mimic_diff_vqa", "medquad", "rocov2"}
    assert corpora <= named["stage1"] and corpora - {"llava_med_alignment"} <= named["stage3"]


def test_sft_learns_every_assistant_turn_of_a_multi_turn_record(tiny_dir):
    from medmo.model.load import load_processor
    from medmo.train.sft import SFTCollator, sft_row

    rec = _convert("llava_med_instruct", FIX / "llava_med" / "data")[0][0]
    row = sft_row(rec, FIX)
    processor = load_processor(tiny_dir)
    batch = SFTCollator(processor)([row])
    learned = processor.tokenizer.decode(batch["labels"][0][batch["labels"][0] != -100])
    replies = [m["content"] for m in rec.messages if m["role"] == "assistant"]
    assert learned == "".join(f"{r}<|im_end|>" for r in replies)  # all three answers, none of the questions
