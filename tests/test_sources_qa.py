"""The VQA and text-QA converters on the real files in ../shared/data (counts checked
against the releases) and on small files written in the exact release format."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import qa_fixtures
from medmo.data.schema import IMAGE_TOKEN, validate_record
from medmo.data.sources import Drops, get_source

QA_SOURCES = ("vqa_rad", "slake", "path_vqa", "pmc_vqa", "omnimedvqa", "mmmu_med", "medxpertqa_text", "medxpertqa_mm",
              "mmlu_med", "pubmedqa", "medmcqa", "medqa", "medbullets_op4", "medbullets_op5", "supergpqa_med")


def convert(name, raw, split=None, **kw):
    drops = Drops()
    records = list(get_source(name).convert(Path(raw), drops, split, **kw))
    for r in records:
        validate_record(r.to_dict())
    return records, drops


def test_every_qa_source_is_registered_with_its_licence_documented():
    for name in QA_SOURCES:
        src = get_source(name)
        assert "icen" in src.doc and "plit" in src.doc, f"{name}: docstring must give splits and licence"


# ----------------------------------------------------------------- real files
def test_vqa_rad_test_split_counts(shared_data):
    records, drops = convert("vqa_rad", shared_data / "vqa_rad")
    assert len(records) == 451 and drops.total == 0
    assert Counter(r.answer["closed"] for r in records) == {True: 272, False: 179}
    assert all(Path(r.images[0]).exists() for r in records)  # all 203 test images are there
    r = records[0]
    assert r.prompt == f"{IMAGE_TOKEN}\nIs there evidence of an aortic aneurysm?\nPlease output 'yes' or 'no'(no extra output)."
    assert r.target == "yes" and r.meta["image_organ"] == "CHEST"
    open_q = next(r for r in records if not r.answer["closed"])
    assert open_q.prompt.endswith("Please answer the question concisely.")


def test_slake_counts_and_languages(shared_data):
    records, _ = convert("slake", shared_data / "slake")
    assert len(records) == 2094
    by = Counter((r.meta["lang"], r.answer["closed"]) for r in records)
    assert by[("en", False)] == 645 and by[("en", True)] == 416
    assert by[("zh", False)] + by[("zh", True)] == 1033
    en = next(r for r in records if r.meta["lang"] == "en" and r.answer["closed"])
    assert en.prompt.endswith("Answer the question using a single word or phrase.")  # MedEvalKit's SLAKE wording
    assert en.images[0].endswith("source.jpg") and "imgs" in en.images[0]
    zh = next(r for r in records if r.meta["lang"] == "zh")
    assert zh.prompt.endswith("请简要回答该问题。") or zh.prompt.endswith("请用一个单词或者短语回答该问题。")
    val, _ = convert("slake", shared_data / "slake", "validation")
    assert val and all(r.split == "validate" for r in val)


def test_pubmedqa_official_test_split(shared_data):
    records, _ = convert("pubmedqa", shared_data / "pubmedqa")
    assert len(records) == 500
    truth = json.loads((shared_data / "pubmedqa" / "test_ground_truth.json").read_text())
    letter = {"yes": "A", "no": "B", "maybe": "C"}
    assert all(r.answer["letter"] == letter[truth[r.meta["pmid"]]] for r in records)
    assert records[0].prompt.startswith("Context: ") and "A. yes\nB. no\nC. maybe" in records[0].prompt
    assert len(convert("pubmedqa", shared_data / "pubmedqa", "all")[0]) == 1000


@pytest.mark.parametrize("path,n_options", [("medqa", 4), ("medqa/5options", 5)])
def test_medqa_four_and_five_options(shared_data, path, n_options):
    records, drops = convert("medqa", shared_data / path)
    assert len(records) == 1273 and drops.total == 0
    assert {r.meta["n_options"] for r in records} == {n_options}
    first = json.loads((shared_data / path / "test.jsonl").read_text().splitlines()[0])
    assert records[0].answer["letter"] == first["answer_idx"]
    assert records[0].answer["choices"][first["answer_idx"]] == first["answer"]


def test_medmcqa_full_validation_and_single_answer_subset(shared_data):
    records, _ = convert("medmcqa", shared_data / "medmcqa")
    assert len(records) == 4183  # MedEvalKit evaluates the whole validation split
    first = json.loads((shared_data / "medmcqa/full_validation/medmcqa_input.jsonl").read_text().splitlines()[0])
    assert records[0].answer["letter"] == first["label"][0]
    assert set(records[0].answer["choices"]) == set("ABCD")
    assert records[0].answer["choices"]["A"].startswith("Impulse through myelinated fibers is slower")
    assert "Answer Choices" not in records[0].meta["question"]
    single, _ = convert("medmcqa", shared_data / "medmcqa" / "test.jsonl")
    assert len(single) == 2816


def test_mmlu_medical_subjects(shared_data):
    records, _ = convert("mmlu_med", shared_data / "mmlu")
    assert len(records) == 1089
    assert Counter(r.meta["subject"] for r in records)["professional_medicine"] == 272


def test_medxpertqa_text_and_mm(shared_data):
    text, _ = convert("medxpertqa_text", shared_data / "medxpertqa")
    assert len(text) == 244 and all(len(r.answer["choices"]) == 10 and not r.images for r in text)
    mm, _ = convert("medxpertqa_mm", shared_data / "medxpertqa")
    assert len(mm) == 2000 and all(len(r.answer["choices"]) == 5 and r.images for r in mm)
    assert mm[0].prompt.count(IMAGE_TOKEN) == len(mm[0].images) == 2
    assert mm[0].meta["medical_task"] == "Treatment"


# ----------------------------------------------------------------- release-format fixtures
def test_path_vqa_hf_parquet(tmp_path):
    raw = qa_fixtures.path_vqa(tmp_path / "path-vqa")
    records, drops = convert("path_vqa", raw, image_dir=tmp_path / "imgs")
    assert len(records) == 3 and drops.counts == {"missing_field": 1}
    assert [r.answer["closed"] for r in records] == [False, True, True]
    assert all(Path(r.images[0]).exists() for r in records)
    assert records[0].images[0] == records[1].images[0]  # same bytes, one file
    again, _ = convert("path_vqa", raw, image_dir=tmp_path / "imgs")  # idempotent
    assert [r.to_dict() for r in again] == [r.to_dict() for r in records]


def test_path_vqa_save_to_disk(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"image": [{"bytes": qa_fixtures.png_bytes(), "path": None}],
                                     "question": ["is this normal?"], "answer": ["no"]},
                                    features=datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                                                "answer": datasets.Value("string")}))
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "pv"))
    records, _ = convert("path_vqa", tmp_path / "pv", image_dir=tmp_path / "imgs")
    assert len(records) == 1 and records[0].answer == {"text": "no", "closed": True}


def test_pmc_vqa_csv(tmp_path):
    records, drops = convert("pmc_vqa", qa_fixtures.pmc_vqa(tmp_path / "PMC-VQA"))
    assert [r.answer["letter"] for r in records] == ["B", "C", "A"]  # 3rd: letter read from the Answer text
    assert records[0].answer["choices"]["B"] == "CT"  # "B:CT " prefix stripped
    assert drops.counts == {"answer_not_in_choices": 1}


def test_pmc_vqa_bare_letter_answers_are_kept(tmp_path):
    # MedEvalKit's copy writes Answer as the letter alone: kept and mapped to the choice, not dropped
    records, drops = convert("pmc_vqa", qa_fixtures.pmc_vqa_medevalkit(tmp_path / "PMC-VQA"))
    assert [(r.answer["letter"], r.answer["choices"][r.answer["letter"]]) for r in records] == [
        ("B", "CT"), ("D", "Gram"), ("A", "Left")]
    assert records[0].id == "pmc_vqa/test/0" and records[0].images[0].endswith("figures/PMC9_F1.jpg")
    assert drops.counts == {"answer_not_in_choices": 1}  # "E" names no option


def test_pubmedqa_test_split_from_any_copy(shared_data, tmp_path):
    import shutil

    from medmo.data.sources.pubmedqa import NOT_COMPARABLE, official_test_ids

    official, _ = convert("pubmedqa", shared_data / "pubmedqa")  # ori_pqal.json + test_ground_truth.json
    truth = json.loads((shared_data / "pubmedqa" / "test_ground_truth.json").read_text())
    assert len(official) == 500 and {r.meta["pmid"] for r in official} == set(truth)
    # without the ground-truth file the repository's split procedure gives the same 500
    shutil.copy(shared_data / "pubmedqa" / "ori_pqal.json", tmp_path / "ori_pqal.json")
    derived, _ = convert("pubmedqa", tmp_path)
    assert [r.id for r in derived] == [r.id for r in official]
    # the qiaojin/PubMedQA layout (1,000 rows in one "train" split), in the GitHub file's order: the same 500
    ori = json.loads((shared_data / "pubmedqa" / "ori_pqal.json").read_text())
    rows = [{"pubid": int(k), "question": v["QUESTION"], "context": {"contexts": v["CONTEXTS"], "labels": v["LABELS"]},
             "long_answer": v["LONG_ANSWER"], "final_decision": v["final_decision"]} for k, v in ori.items()]
    qa_fixtures.write_parquet(rows, tmp_path / "hf" / "pqa_labeled" / "train-00000-of-00001.parquet")
    hf, _ = convert("pubmedqa", tmp_path / "hf")
    assert {r.id for r in hf} == {r.id for r in official} and not any("not_comparable" in r.meta for r in hf)
    assert len(convert("pubmedqa", tmp_path / "hf", "all")[0]) == 1000
    # another order cannot be trusted to give the official ids: all 1,000 evaluated, each flagged
    qa_fixtures.write_parquet(sorted(rows, key=lambda r: r["pubid"]), tmp_path / "hf" / "pqa_labeled" / "train-00000-of-00001.parquet")
    shuffled, _ = convert("pubmedqa", tmp_path / "hf")
    assert len(shuffled) == 1000 and all(r.meta["not_comparable"] == NOT_COMPARABLE for r in shuffled)
    assert official_test_ids([("1", "yes"), ("2", "no")]) is None and official_test_ids([("1", "unsure")]) is None


def test_pubmedqa_medevalkits_copy(tmp_path):
    # openlifescienceai/pubmedqa, as MedEvalKit's loader reads it: its own "test" split, fields under "data"
    rows = [{"id": "p1", "data": {"Question": "Does X cause Y?", "Context": ["Background.", "Results."],
                                  "Options": {"A": "yes", "B": "no", "C": "maybe"}, "Correct Option": "B"}},
            {"id": "p2", "data": {"Question": "Q2", "Context": ["C."], "Options": {"A": "yes", "B": "no", "C": "maybe"},
                                  "Correct Option": "D"}},  # names no option
            {"id": "p3", "data": "not a dict"}]
    qa_fixtures.write_parquet(rows[:2], tmp_path / "olsai" / "data" / "test-00000-of-00001.parquet")
    qa_fixtures.write_parquet([{"id": "t", "data": rows[0]["data"]}], tmp_path / "olsai" / "data" / "train-00000-of-00001.parquet")
    records, drops = convert("pubmedqa", tmp_path / "olsai")
    assert [r.id for r in records] == ["pubmedqa/test/p1"] and drops.counts == {"bad_label": 1}
    assert records[0].answer["letter"] == "B" and records[0].prompt.startswith("Context: Background.\nResults.\n")
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    _, drops = convert("pubmedqa", tmp_path / "rows.jsonl")
    assert drops.counts == {"bad_label": 1, "malformed_row": 1}


def test_mmmu_med_mmmu_layout_first_image_only(tmp_path):
    from medmo.model.prompts import mmmu_prompt

    raw = qa_fixtures.mmmu(tmp_path / "MMMU")
    generic, _ = convert("mmmu_med", raw, image_dir=tmp_path / "imgs")
    paper, _ = convert("mmmu_med", raw, image_dir=tmp_path / "imgs", layout="mmmu")
    assert [r.id for r in paper] == [r.id for r in generic] and all(r.meta["layout"] == "mmmu" for r in paper)
    two = paper[1]  # the question with two images: MedEvalKit passes image_1 only
    assert two.images == generic[1].images[:1] and two.prompt.count(IMAGE_TOKEN) == 1
    assert two.prompt == (f"{IMAGE_TOKEN}\n\n<image 1> <image 2> Which finding differs?\n\n(A) A mass\n(B) An effusion\n"
                          "\n\n        Answer with the option's letter from the given choices directly.")
    assert two.answer == generic[1].answer  # same question, same reference
    open_q = next(r for r in paper if r.task == "vqa")
    assert open_q.prompt.endswith(mmmu_prompt("<image 1> What is the incidence per 1000?"))
    assert open_q.prompt.endswith("Answer the question using a single word or phrase.")
    with pytest.raises(ValueError, match="unknown layout 'mmmu2'"):
        convert("mmmu_med", raw, layout="mmmu2")


def test_omnimedvqa_open_access(tmp_path):
    records, drops = convert("omnimedvqa", qa_fixtures.omnimedvqa(tmp_path / "OmniMedVQA"))
    assert len(records) == 3 and drops.counts == {"answer_not_in_choices": 1}
    assert {r.meta["question_id"] if "question_id" in r.meta else r.id.split("/")[-1] for r in records} >= {"ODIR_0"}
    assert Counter(r.modality for r in records) == {"ct": 2, "fundus": 1}  # `modality` key variant read too
    assert records[1].answer == {"choices": {"A": "Adenocarcinoma", "B": "No, It's normal."}, "letter": "B"}


def test_mmmu_med_validation(tmp_path):
    records, drops = convert("mmmu_med", qa_fixtures.mmmu(tmp_path / "MMMU"), image_dir=tmp_path / "imgs")
    assert drops.counts == {"bad_options": 1}
    mcq = [r for r in records if r.task == "mcq"]
    assert len(mcq) == 2 and mcq[0].answer["choices"]["C"] == "Basal cell carcinoma"
    assert len(mcq[1].images) == 2 and mcq[1].prompt.count(IMAGE_TOKEN) == 2
    open_q = next(r for r in records if r.task == "vqa")
    assert open_q.answer == {"text": "12", "closed": False} and open_q.meta["subject"] == "Public_Health"


@pytest.mark.parametrize("n", [4, 5])
def test_medbullets(tmp_path, n):
    records, drops = convert(f"medbullets_op{n}", qa_fixtures.medbullets(tmp_path / "cc"))
    assert len(records) == 2 and drops.counts == {"missing_field": 1}
    assert len(records[0].answer["choices"]) == n and records[1].answer["letter"] == "C"


def test_supergpqa_medicine_only(tmp_path):
    records, drops = convert("supergpqa_med", qa_fixtures.supergpqa(tmp_path / "SuperGPQA"))
    assert [r.answer["letter"] for r in records] == ["A", "H"]
    assert len(records[1].answer["choices"]) == 10 and records[1].meta["difficulty"] == "hard"
    assert drops.counts == {"malformed_row": 1}


def test_bad_rows_are_counted_not_raised(tmp_path):
    rows = [{"question": "q1", "options": {"A": "x", "B": "y"}, "answer_idx": "B"},
            {"question": "q2", "options": {"A": "x", "B": "y"}, "answer_idx": "E"},
            {"question": "q3", "options": {"A": "x"}, "answer_idx": "A"}]
    f = tmp_path / "test.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    records, drops = convert("medqa", f)
    assert len(records) == 1
    assert drops.counts == {"answer_not_in_choices": 1, "bad_options": 1, "malformed_row": 1}


@pytest.mark.parametrize("name", ["vqa_rad", "slake", "pmc_vqa", "omnimedvqa", "mmmu_med", "medqa", "medbullets_op4"])
def test_wrong_path_says_what_was_expected(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="expected|found"):
        list(get_source(name).convert(tmp_path / "missing", Drops()))


# ----------------------------------------------------------------- other release layouts of the same datasets
def test_vqa_rad_hf_copy(tmp_path):
    records, _ = convert("vqa_rad", qa_fixtures.vqa_rad_hf(tmp_path / "vqa-rad"), image_dir=tmp_path / "imgs")
    assert [r.answer for r in records] == [{"text": "no", "closed": True}, {"text": "liver", "closed": False}]
    assert records[0].images == records[1].images and records[0].images[0].endswith(".jpg")


def test_mmlu_original_csv_and_hf(tmp_path):
    records, drops = convert("mmlu_med", qa_fixtures.mmlu_csv(tmp_path / "mmlu"))
    assert [(r.meta["subject"], r.answer["letter"]) for r in records] == [("anatomy", "A")]
    assert drops.counts == {"malformed_row": 1}
    records, _ = convert("mmlu_med", qa_fixtures.mmlu_hf(tmp_path / "cais"))
    assert records[0].answer == {"choices": {"A": "C", "B": "B1", "C": "D", "D": "B12"}, "letter": "C"}


def test_medmcqa_cop_is_one_based_in_the_release_and_zero_based_on_hf(tmp_path):
    orig, _ = convert("medmcqa", qa_fixtures.medmcqa_original(tmp_path / "orig"), "dev")
    assert [r.answer["letter"] for r in orig] == ["A", "B"] and orig[0].meta["subject"] == "Pharmacology"
    hf, _ = convert("medmcqa", qa_fixtures.medmcqa_hf(tmp_path / "hf"))
    assert hf[0].answer["choices"][hf[0].answer["letter"]] == "Skin"


def test_pubmedqa_hf_pqa_labeled(tmp_path):
    records, _ = convert("pubmedqa", qa_fixtures.pubmedqa_hf(tmp_path / "PubMedQA"), "all")  # "train" leaves out the test 500
    assert records[0].answer["letter"] == "C" and records[0].prompt.startswith("Context: Background.\nResults.")
