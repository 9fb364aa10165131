"""CheXpert Plus (Chambon et al., 2024): chest X-ray report generation, one record per image
(id "chexpert_plus/<path_to_image without suffix>", which starts with the split).

Release format read (Stanford AIMI; access after accepting the Stanford University
Dataset Research Use Agreement; no redistribution): `df_chexpert_plus_240401.csv`
(any df_chexpert_plus*.csv) with, per image, path_to_image
("train/patient42142/study5/view1_frontal.jpg"), frontal_lateral, ap_pa,
deid_patient_id, patient_report_date_order, report (the full de-identified text),
section_findings, section_impression, section_* (narrative, clinical_history,
history, comparison, technique, procedure_comments, end_of_impression, summary,
accession_number), demographics (age, sex, race, ...) and split ("train"/"valid";
there is no public test split: MedEvalKit evaluates on "valid"). Images: the JPGs at
`raw/<path_to_image>` or the PNG release at `raw/PNG/<path with .png>`.
Findings/impression come from the section_* columns; where both are empty, the full
`report` goes through medmo's section splitter; rows still without either are dropped
("empty_report"). Demographics are not copied into records.
Licence: Stanford University Dataset Research Use Agreement (non-commercial research).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._qa import find_file, keep, read_rows
from medmo.data.sources._report import clean, first_existing, report_record, split_sections


@register_source("chexpert_plus", tasks=("report",), modality="xray",
                 licence="Stanford University Dataset Research Use Agreement",
                 url="https://stanfordaimi.azurewebsites.net/ (CheXpert Plus; github Stanford-AIMI/chexpert-plus)")
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the CheXpert Plus folder with df_chexpert_plus_240401.csv (or that CSV)")
    path = find_file(raw, ["df_chexpert_plus*.csv", "*/df_chexpert_plus*.csv"], "df_chexpert_plus_240401.csv")
    root = raw if raw.is_dir() else path.parent
    n_split = 0
    for i, row in enumerate(read_rows(path)):
        where = f"{path.name}:{i + 2}"
        with drops.guard(where):
            if not keep(row, drops, where, ("path_to_image", "split")):
                continue
            if split and row["split"] != split:
                continue
            n_split += 1
            findings, impression = clean(row.get("section_findings")), clean(row.get("section_impression"))
            if not findings and not impression:
                sections = split_sections(row.get("report") or "")
                findings, impression = sections["findings"], sections["impression"]
            if not findings and not impression:
                drops.add("empty_report", where)
                continue
            rel = Path(row["path_to_image"])
            image = first_existing([root / rel, root / "PNG" / rel.with_suffix(".png"), root / rel.with_suffix(".png")])
            yield report_record(
                rid=f"chexpert_plus/{rel.with_suffix('').as_posix()}", source="chexpert_plus",
                split=row["split"], images=[image], findings=findings, impression=impression,
                meta={k: row.get(k) for k in ("deid_patient_id", "patient_report_date_order", "frontal_lateral", "ap_pa")},
            )
    if split and n_split == 0:
        raise ValueError(f"{path}: no row in split {split!r}; CheXpert Plus has 'train' and 'valid'")
