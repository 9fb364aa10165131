"""Small files in the exact public release formats of the QA datasets that have no real
copy in ../shared/data (PathVQA, PMC-VQA, OmniMedVQA, MMMU, Medbullets, SuperGPQA).

Each writer makes a folder laid out like the download and returns its path; every set
includes one deliberately bad row so tests see it counted in Drops. Images are tiny PNGs.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from PIL import Image


def png_bytes(color=(200, 30, 30), size=(40, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def write_parquet(rows: list[dict], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), str(path))
    return path


def path_vqa(root: Path) -> Path:
    """HF flaviagiammarino/path-vqa snapshot: data/test-00000-of-00001.parquet."""
    img = {"bytes": png_bytes(), "path": None}
    rows = [
        {"image": img, "question": "where are liver stem cells (oval cells) located?", "answer": "in the canals of hering"},
        {"image": img, "question": "is this a lesion of the liver?", "answer": "yes"},
        {"image": {"bytes": png_bytes((0, 90, 0)), "path": None}, "question": "does this image show necrosis?", "answer": "no"},
        {"image": None, "question": "what is shown?", "answer": "fibrosis"},  # bad: no image
    ]
    write_parquet(rows, root / "data" / "test-00000-of-00001.parquet")
    return root


def _pmc_vqa_csv(root: Path, images: str, cols: list[str], rows: list[list[str]]) -> Path:
    """test_2.csv with `cols` and `rows` under root, and a PNG per row's Figure_path in root/images."""
    (root / images).mkdir(parents=True, exist_ok=True)
    with (root / "test_2.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows(rows)
    for r in rows:
        (root / images / r[cols.index("Figure_path")]).write_bytes(png_bytes())
    return root


def pmc_vqa(root: Path) -> Path:
    """PMC-VQA release: test_2.csv (Choice values "A:text", Answer_label) + images/."""
    cols = ["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label", "split"]
    rows = [
        ["PMC1_F1.jpg", "What imaging modality was used?", "CT", "A:MRI ", "B:CT ", "C:Ultrasound ", "D:PET ", "B", "test"],
        ["PMC2_F3.jpg", "Which organ shows the lesion?", "Liver", "A:Kidney", "B:Spleen", "C:Liver", "D:Pancreas", "C", "test"],
        ["PMC3_F2.jpg", "What stain was used?", "H&E", "A:H&E", "B:PAS", "C:Giemsa", "D:Trichrome", "", "test"],
        ["PMC4_F1.jpg", "What is shown?", "Bone", "A:Skin", "B:Nerve", "C:Fat", "D:Muscle", "Z", "test"],  # bad letter
    ]
    return _pmc_vqa_csv(root, "images", cols, rows)


def pmc_vqa_medevalkit(root: Path) -> Path:
    """PMC-VQA as MedEvalKit reads it (RadGenome/PMC-VQA test_2.csv): index, Figure_path,
    Caption, Question, Choice A..D, Answer, split; Answer a bare letter, no Answer_label."""
    cols = ["index", "Figure_path", "Caption", "Question", "Choice A", "Choice B", "Choice C", "Choice D", "Answer", "split"]
    rows = [
        ["0", "PMC9_F1.jpg", "A CT.", "What modality?", " A:MRI", " B:CT", " C:PET", " D:US", "B", "test"],  # bare letter
        ["1", "PMC9_F2.jpg", "A stain.", "What stain?", "A:H&E", "B:PAS", "C:Giemsa", "D:Gram", " D ", "test"],  # padded
        ["2", "PMC9_F3.jpg", "", "Which side?", "A:Left", "B:Right", "", "", "(A)", "test"],  # two options, (A)
        ["3", "PMC9_F4.jpg", "", "What size?", "A:1 cm", "B:2 cm", "C:3 cm", "D:4 cm", "E", "test"],  # not an option
    ]
    return _pmc_vqa_csv(root, "figures", cols, rows)


def omnimedvqa(root: Path) -> Path:
    """OmniMedVQA release: QA_information/Open-access/<dataset>.json + Images/."""
    qa = root / "QA_information" / "Open-access"
    qa.mkdir(parents=True, exist_ok=True)
    items = [
        {"dataset": "Chest CT Scan", "question_id": "Chest CT Scan_0", "question_type": "Modality Recognition",
         "question": "What imaging modality is used?", "gt_answer": "CT", "image_path": "Images/Chest CT Scan/a.png",
         "option_A": "MRI", "option_B": "CT", "option_C": "X-ray", "option_D": "PET", "modality_type": "CT(Computed Tomography)"},
        {"dataset": "Chest CT Scan", "question_id": "Chest CT Scan_1", "question_type": "Disease Diagnosis",
         "question": "Is there an abnormality?", "gt_answer": "No, It's normal.", "image_path": "Images/Chest CT Scan/b.png",
         "option_A": "Adenocarcinoma", "option_B": "No, It's normal.", "modality": "CT(Computed Tomography)"},
        {"dataset": "Chest CT Scan", "question_id": "Chest CT Scan_2", "question_type": "Disease Diagnosis",
         "question": "What is seen?", "gt_answer": "Nodule", "image_path": "Images/Chest CT Scan/c.png",
         "option_A": "Mass", "option_B": "Effusion", "modality_type": "CT(Computed Tomography)"},  # bad: answer absent
    ]
    (qa / "Chest CT Scan.json").write_text(json.dumps(items), encoding="utf-8")
    fundus = [{"dataset": "ODIR", "question_id": "ODIR_0", "question_type": "Anatomy Identification",
               "question": "Which eye is shown?", "gt_answer": "Left", "image_path": "Images/ODIR/x.jpg",
               "option_A": "Left", "option_B": "Right", "option_C": "Both", "modality_type": "Fundus Photography"}]
    (qa / "ODIR.json").write_text(json.dumps(fundus), encoding="utf-8")
    for it in items + fundus:
        p = root / it["image_path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(png_bytes())
    return root


def mmmu(root: Path) -> Path:
    """MMMU/MMMU hub snapshot: <Subject>/validation-00000-of-00001.parquet per subject."""
    img = {"bytes": png_bytes(), "path": "image_1.png"}
    empty = {f"image_{k}": None for k in range(2, 8)}
    base = {"explanation": "", "img_type": "['Pathological Images']", "topic_difficulty": "Medium"}
    clinical = [
        {"id": "validation_Clinical_Medicine_1", "question": "<image 1> What is the most likely diagnosis?",
         "options": "['Melanoma', 'Nevus', 'Basal cell carcinoma', 'Wart']", "answer": "C", "question_type": "multiple-choice",
         "subfield": "Dermatology", "image_1": img, **empty, **base},
        {"id": "validation_Clinical_Medicine_2", "question": "<image 1> <image 2> Which finding differs?",
         "options": "['A mass', 'An effusion']", "answer": "B", "question_type": "multiple-choice", "subfield": "Radiology",
         "image_1": img, **empty, "image_2": {"bytes": png_bytes((0, 0, 200)), "path": "image_2.png"}, **base},
        {"id": "validation_Clinical_Medicine_3", "question": "Broken options", "options": "['unterminated",
         "answer": "A", "question_type": "multiple-choice", "subfield": "x", "image_1": img, **empty, **base},  # bad
    ]
    public = [
        {"id": "validation_Public_Health_1", "question": "<image 1> What is the incidence per 1000?", "options": "[]",
         "answer": "12", "question_type": "open", "subfield": "Epidemiology", "image_1": img, **empty, **base},
    ]
    write_parquet(clinical, root / "Clinical_Medicine" / "validation-00000-of-00001.parquet")
    write_parquet(public, root / "Public_Health" / "validation-00000-of-00001.parquet")
    return root


def medbullets(root: Path) -> Path:
    """github HanjieChen/ChallengeClinicalQA: medbullets/medbullets_op4.csv and _op5.csv."""
    d = root / "medbullets"
    d.mkdir(parents=True, exist_ok=True)
    q = "A 45-year-old man presents with chest pain radiating to the back. What is the next best step?"
    opts = ["CT angiography", "Troponin", "Aspirin", "Exercise stress test", "Reassurance"]
    for n in (4, 5):
        keys = ["opa", "opb", "opc", "opd", "ope"][:n]
        with (d / f"medbullets_op{n}.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["question", "answer", "answer_idx", *keys, "explanation", "link"])
            w.writeheader()
            w.writerow({"question": q, "answer": opts[0], "answer_idx": "A", **dict(zip(keys, opts)), "explanation": "e", "link": "u"})
            w.writerow({"question": "Which drug?", "answer": opts[2], "answer_idx": "C", **dict(zip(keys, opts)), "explanation": "", "link": ""})
            w.writerow({"question": "", "answer": "", "answer_idx": "B", **dict(zip(keys, opts)), "explanation": "", "link": ""})  # bad
    return root


def supergpqa(root: Path) -> Path:
    """HF m-a-p/SuperGPQA: SuperGPQA-all.jsonl (all disciplines; medicine is filtered)."""
    root.mkdir(parents=True, exist_ok=True)
    opts = [f"option {i}" for i in range(10)]
    rows = [
        {"uuid": "u1", "question": "Which enzyme is deficient in PKU?", "options": ["Phenylalanine hydroxylase", *opts[1:]],
         "answer": "Phenylalanine hydroxylase", "answer_letter": "A", "discipline": "Medicine", "field": "Basic Medicine",
         "subfield": "Biochemistry", "difficulty": "easy", "is_calculation": False},
        {"uuid": "u2", "question": "Dose?", "options": opts, "answer": "option 7", "answer_letter": "H",
         "discipline": "Medicine", "field": "Clinical Medicine", "subfield": "Pharmacology", "difficulty": "hard",
         "is_calculation": True},
        {"uuid": "u3", "question": "What is 2+2?", "options": ["3", "4"], "answer": "4", "answer_letter": "B",
         "discipline": "Science", "field": "Mathematics", "subfield": "x", "difficulty": "easy", "is_calculation": True},
    ]
    with (root / "SuperGPQA-all.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.write('{"uuid": "u4", "question": "truncated\n')  # bad: malformed line
    return root


def vqa_rad_hf(root: Path) -> Path:
    """HF flaviagiammarino/vqa-rad snapshot: data/test-*.parquet (image, question, answer)."""
    rows = [{"image": {"bytes": png_bytes(), "path": "synpic1.jpg"}, "question": "is there a fracture?", "answer": "no"},
            {"image": {"bytes": png_bytes(), "path": "synpic1.jpg"}, "question": "what organ is shown?", "answer": "liver"}]
    write_parquet(rows, root / "data" / "test-00000-of-00001.parquet")
    return root


def mmlu_csv(root: Path) -> Path:
    """The original hendrycks release: data/test/<subject>_test.csv, no header."""
    d = root / "data" / "test"
    d.mkdir(parents=True, exist_ok=True)
    with (d / "anatomy_test.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Which bone is in the thigh?", "Femur", "Tibia", "Radius", "Ulna", "A"])
        w.writerow(["Broken row", "only", "three"])  # bad: wrong column count
    with (d / "astronomy_test.csv").open("w", newline="", encoding="utf-8") as f:  # not medical: never read
        csv.writer(f).writerow(["Which planet?", "Mars", "Venus", "Earth", "Moon", "A"])
    return root


def mmlu_hf(root: Path) -> Path:
    """HF cais/mmlu snapshot: <subject>/test-*.parquet with choices [4] and answer 0-3."""
    rows = [{"question": "Which vitamin is fat-soluble?", "subject": "nutrition", "choices": ["C", "B1", "D", "B12"], "answer": 2}]
    write_parquet(rows, root / "nutrition" / "test-00000-of-00001.parquet")
    return root


def medmcqa_original(root: Path) -> Path:
    """The original MedMCQA release: dev.json as JSON lines with cop 1-4."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"id": "m1", "question": "Drug of choice for absence seizures?", "opa": "Ethosuximide", "opb": "Phenytoin",
             "opc": "Carbamazepine", "opd": "Lamotrigine", "cop": 1, "choice_type": "single", "exp": "",
             "subject_name": "Pharmacology", "topic_name": "CNS"},
            {"id": "m2", "question": "Largest organ?", "opa": "Liver", "opb": "Skin", "opc": "Brain", "opd": "Lung",
             "cop": 2, "choice_type": "single", "exp": "", "subject_name": "Anatomy", "topic_name": None}]
    (root / "dev.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return root


def medmcqa_hf(root: Path) -> Path:
    """HF openlifescienceai/medmcqa snapshot: data/validation-*.parquet with cop 0-3."""
    rows = [{"id": "m1", "question": "Largest organ?", "opa": "Liver", "opb": "Skin", "opc": "Brain", "opd": "Lung",
             "cop": 1, "choice_type": "single", "exp": "", "subject_name": "Anatomy", "topic_name": None}]
    write_parquet(rows, root / "data" / "validation-00000-of-00001.parquet")
    return root


def pubmedqa_hf(root: Path) -> Path:
    """HF qiaojin/PubMedQA pqa_labeled snapshot: pqa_labeled/train-*.parquet."""
    rows = [{"pubid": 1, "question": "Does X cause Y?", "context": {"contexts": ["Background.", "Results."],
             "labels": ["BACKGROUND", "RESULTS"], "meshes": ["M"]}, "long_answer": "Yes.", "final_decision": "maybe"}]
    write_parquet(rows, root / "pqa_labeled" / "train-00000-of-00001.parquet")
    return root
