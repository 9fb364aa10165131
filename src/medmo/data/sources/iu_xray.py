"""IU-Xray / Open-i chest X-ray reports (Demner-Fushman et al., JAMIA 2016): report generation.

Release formats read:
- R2Gen's `annotation.json` (what most report-generation papers use), next to `images/`:
  {"train"|"val"|"test": [{"id": "CXR2384_IM-0942", "report": "...", "image_path":
  ["CXR2384_IM-0942/0.png", "CXR2384_IM-0942/1.png"], "split": "test"}, ...]}. Its
  "report" is the FINDINGS section only (R2Gen drops impressions), so impression is "".
  Splits: train 2069 / val 296 / test 590 studies (R2Gen's 7:1:2).
- MedEvalKit's `test.json` (datas/IU_XRAY/test.json in its repository; what MedMO's tables
  were scored on), next to `images/`: a list of {"id": "open_i_1020", "image":
  ["CXR1020_IM-0017-1001.png", ...], "findings": "...", "impression": "..."}, 296 studies
  with both sections (images are Open-i's PNG file names). Split: test only.
- Open-i's original XML (`ecgen-radiology/*.xml`, one file per study, with
  `NLMCXR_png/` images): <AbstractText Label="FINDINGS|IMPRESSION|INDICATION|COMPARISON">
  inside MedlineCitation/Article/Abstract, one <parentImage id="CXR1_1_IM-0001-3001">
  per image (PNG name = id + ".png"), <MeSH><major> terms. No official split: every
  study gets split "all".
Studies with neither findings nor impression are dropped ("empty_report"), as MedEvalKit does.
Licence: CC BY-NC-ND 4.0 (Open-i); reports may not be redistributed modified, so medmo
ships no IU-Xray text: the test fixtures are made-up text in the release layout.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, check_utf8, register_source, require_path
from medmo.data.sources._qa import read_text
from medmo.data.sources._report import clean, first_existing, report_record


def _r2gen(path: Path, data: dict, drops: Drops, split: str | None) -> Iterator[Record]:
    splits = [split] if split else list(data)
    if split and split not in data:
        raise ValueError(f"{path}: split {split!r} not in annotation.json; it has {', '.join(data)}")
    image_root = path.parent / "images"
    for sp in splits:
        for i, row in enumerate(data[sp]):
            where = f"{path.name}[{sp}][{i}]"
            with drops.guard(where):
                check_utf8(row)
                if not isinstance(row, dict) or not row.get("image_path"):
                    drops.add("malformed_row", where)
                    continue
                if not clean(row.get("report")):
                    drops.add("empty_report", where)
                    continue
                sid = row.get("id", i)
                yield report_record(rid=f"iu_xray/{sp}/{sid}", source="iu_xray", split=sp,
                                    images=[first_existing([image_root / p]) for p in row["image_path"]],
                                    findings=row["report"], impression="", meta={"study": sid, "format": "r2gen"})


def _medevalkit(path: Path, data: list, drops: Drops, split: str | None) -> Iterator[Record]:
    if split not in (None, "test"):
        raise ValueError(f"{path}: MedEvalKit's IU-Xray file is the test split only, not {split!r}")
    image_root = path.parent / "images"
    for i, row in enumerate(data):
        where = f"{path.name}[{i}]"
        with drops.guard(where):
            if not isinstance(row, dict) or not row.get("image") or not isinstance(row["image"], list):
                drops.add("malformed_row", where)
                continue
            if not clean(row.get("findings")) and not clean(row.get("impression")):
                drops.add("empty_report", where)
                continue
            sid = row.get("id", i)
            yield report_record(rid=f"iu_xray/test/{sid}", source="iu_xray", split="test",
                                images=[first_existing([image_root / p]) for p in row["image"]],
                                findings=row.get("findings") or "", impression=row.get("impression") or "",
                                meta={"study": sid, "format": "medevalkit"})


def _xml(files: list[Path], drops: Drops, split: str | None) -> Iterator[Record]:
    if split not in (None, "all"):
        raise ValueError(f"the Open-i XML release has no {split!r} split (every study is 'all'); "
                         "use R2Gen's annotation.json for train/val/test")
    for f in files:
        with drops.guard(f.name):
            try:
                root = ET.parse(f).getroot()
            except ET.ParseError as e:
                drops.add("malformed_xml", f"{f.name}: {e}")
                continue
            sections = {(a.get("Label") or "").lower(): clean(a.text) for a in root.iter("AbstractText")}
            findings, impression = sections.get("findings", ""), sections.get("impression", "")
            if not findings and not impression:
                drops.add("empty_report", f.name)
                continue
            ids = [p.get("id") for p in root.iter("parentImage") if p.get("id")]
            if not ids:
                drops.add("no_images", f.name)
                continue
            png = f.parent.parent / "NLMCXR_png"
            images = [first_existing([png / f"{i}.png", f.parent / "NLMCXR_png" / f"{i}.png"]) for i in ids]
            uid = root.find("uId")
            sid = uid.get("id") if uid is not None and uid.get("id") else f.stem
            yield report_record(rid=f"iu_xray/all/{sid}", source="iu_xray", split="all", images=images,
                                findings=findings, impression=impression,
                                meta={"study": sid, "format": "openi_xml", "indication": sections.get("indication", ""),
                                      "mesh": [clean(m.text) for m in root.iter("major") if clean(m.text)]})


@register_source("iu_xray", tasks=("report",), modality="xray", licence="CC BY-NC-ND 4.0 (Open-i)",
                 url="https://openi.nlm.nih.gov/faq (R2Gen split: github cuhksz-nlp/R2Gen)",
                 splits={"train": 2069, "val": 296, "test": 590})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "MedEvalKit's IU_XRAY folder (test.json + images/), R2Gen's iu_xray folder "
                            "(annotation.json + images/) or Open-i's ecgen-radiology/*.xml")
    if raw.is_dir():
        raw = next((raw / n for n in ("annotation.json", "test.json") if (raw / n).is_file()), raw)
    if raw.is_file() and raw.suffix == ".json":
        data = json.loads(read_text(raw))
        if isinstance(data, list):
            yield from _medevalkit(raw, data, drops, split)
        elif isinstance(data, dict):
            yield from _r2gen(raw, data, drops, split)
        else:
            raise ValueError(f"{raw}: expected MedEvalKit's test.json (a list of studies) or R2Gen's "
                             "annotation.json (a dict of split -> list of studies)")
        return
    files = [raw] if raw.suffix == ".xml" else sorted(raw.glob("*.xml")) or sorted(raw.glob("ecgen-radiology/*.xml"))
    if not files:
        raise FileNotFoundError(f"{raw}: expected test.json (MedEvalKit), annotation.json (R2Gen) "
                                "or ecgen-radiology/*.xml (Open-i)")
    yield from _xml(files, drops, split)
