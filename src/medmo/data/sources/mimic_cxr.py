"""MIMIC-CXR (Johnson et al., Scientific Data 2019): chest X-ray report generation, one record per study.

Release format read (PhysioNet, credentialed access: a PhysioNet account, CITI training
and the signed data use agreement; never redistribute reports or images):
- MIMIC-CXR-JPG 2.0.0 at `raw`: `mimic-cxr-2.0.0-split.csv[.gz]` (dicom_id, study_id,
  subject_id, split in train/validate/test), `mimic-cxr-2.0.0-metadata.csv[.gz]`
  (dicom_id, ..., ViewPosition PA/AP/LATERAL/LL/...), images
  `files/p10/p10000032/s50414267/<dicom_id>.jpg`;
- the free-text reports of MIMIC-CXR 2.0.0 (`mimic-cxr-reports.zip`), one per study:
  `files/p10/p10000032/s50414267.txt`, under `raw` or under `reports_dir`.
Reports are split into FINDINGS and IMPRESSION with medmo.data.sources._report
(headers, aliases, MIMIC's last-paragraph fallback). Studies whose report has neither are
dropped ("empty_report"); a study without its report file is dropped ("missing_report").
Images: all of the study's, ordered PA, AP, lateral, others (`views="frontal"`: PA/AP only;
a study with none is dropped, "no_frontal_view"). Splits: train 222,758 / validate 1,808
/ test 3,269 studies in split.csv (the official split); split=None converts all three.
Image paths are stored absolute even when the JPGs are not downloaded yet.
Licence: PhysioNet Credentialed Health Data License 1.5.0 (reports and images alike).
"""
from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, check_utf8, csv_rows, register_source, require_path
from medmo.data.sources._report import report_record, split_sections

_VIEW_ORDER = {"PA": 0, "AP": 1, "LATERAL": 2, "LL": 3}
FRONTAL = ("PA", "AP")


def _read_csv(folder: Path, stem: str, required: bool) -> list[dict] | None:
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        path = folder / name
        if path.exists():
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8", errors="surrogateescape", newline="") as f:
                return list(csv_rows(csv.DictReader(f), name))
    if required:
        raise FileNotFoundError(f"{folder}: no {stem}.csv[.gz]; expected the MIMIC-CXR-JPG 2.0.0 folder")
    return None


@register_source("mimic_cxr", tasks=("report",), modality="xray", licence="PhysioNet Credentialed Health Data 1.5.0",
                 url="https://physionet.org/content/mimic-cxr-jpg/2.0.0/",
                 splits={"train": 222_758, "validate": 1_808, "test": 3_269})
def convert(raw: Path, drops: Drops, split: str | None = None, reports_dir: Path | None = None,
            views: str = "all") -> Iterator[Record]:
    raw = require_path(raw, "the MIMIC-CXR-JPG 2.0.0 folder (mimic-cxr-2.0.0-split.csv.gz, files/)")
    if views not in ("all", "frontal"):
        raise ValueError(f"views={views!r}: expected 'all' or 'frontal'")
    reports = Path(reports_dir) if reports_dir else raw
    rows = _read_csv(raw, "mimic-cxr-2.0.0-split", required=True)
    meta = {r["dicom_id"]: r for r in (_read_csv(raw, "mimic-cxr-2.0.0-metadata", required=False) or [])}
    studies: dict[tuple[str, str], dict] = {}
    images: dict[tuple[str, str], list[str]] = defaultdict(list)
    for i, r in enumerate(rows):
        with drops.guard(f"split.csv:{i + 2}"):
            check_utf8(r)
            if not all(r.get(k) for k in ("dicom_id", "study_id", "subject_id", "split")):
                drops.add("malformed_row", f"split.csv:{i + 2}")
                continue
            if split and r["split"] != split:
                continue
            key = (r["subject_id"], r["study_id"])
            studies.setdefault(key, r)
            images[key].append(r["dicom_id"])
    if split and not studies:
        raise ValueError(f"{raw}: no study in split {split!r}; MIMIC-CXR's splits are train, validate, test")
    for (subject, study), r in studies.items():
        with drops.guard(f"s{study}"):
            rel = Path("files") / f"p{subject[:2]}" / f"p{subject}"
            txt = reports / rel / f"s{study}.txt"
            if not txt.exists():
                drops.add("missing_report", str(txt))
                continue
            sections = split_sections(txt.read_text(encoding="utf-8", errors="replace"))
            if not sections["findings"] and not sections["impression"]:
                drops.add("empty_report", str(txt))
                continue
            dicoms = sorted(images[(subject, study)], key=lambda d: (_VIEW_ORDER.get(meta.get(d, {}).get("ViewPosition", ""), 9), d))
            if views == "frontal":
                dicoms = [d for d in dicoms if meta.get(d, {}).get("ViewPosition") in FRONTAL]
                if not dicoms:
                    drops.add("no_frontal_view", f"s{study}")
                    continue
            yield report_record(
                rid=f"mimic_cxr/{r['split']}/s{study}", source="mimic_cxr", split=r["split"],
                images=[str((raw / rel / f"s{study}" / f"{d}.jpg").resolve()) for d in dicoms],
                findings=sections["findings"], impression=sections["impression"],
                meta={"subject_id": subject, "study_id": study, "dicom_ids": dicoms,
                      "views": [meta.get(d, {}).get("ViewPosition", "") for d in dicoms],
                      "indication": sections.get("indication", "")},
            )
