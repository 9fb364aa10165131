"""MedQuAD (Ben Abacha & Demner-Fushman, BMC Bioinformatics 2019): 47,457 consumer health
question/answer pairs from 12 NIH websites, text-only QA for stages 1 and 3.

Release layout (github abachaa/MedQuAD, read from its README and from public loaders of the
repository): 12 folders `1_CancerGov_QA/`, `2_GARD_QA/`, `3_GHR_QA/`,
`4_MPlus_Health_Topics_QA/`, `5_NIDDK_QA/`, `6_NINDS_QA/`, `7_SeniorHealth_QA/`,
`8_NHLBI_QA_XML/`, `9_CDC_QA/`, `10_MPlus_ADAM_QA/`, `11_MPlusDrugs_QA/`,
`12_MPlusHerbsSupplements_QA/`, one XML file per document:
    <Document id="0000001" source="CancerGov" url="..."><Focus>...</Focus>
      <FocusAnnotations>...</FocusAnnotations>
      <QAPairs><QAPair pid="1"><Question qid="0000001-1" qtype="information">What is (are) ...?</Question>
        <Answer>...</Answer></QAPair> ...</QAPairs></Document>
The three MedlinePlus folders (10-12) ship with their answers removed for copyright, so
their pairs are counted as "empty_answer", not converted. Point `raw` at the repository
folder. One split, "train" (the authors publish none; MedQuAD is no medmo benchmark).
Each pair is one task "vqa" record, modality "text", no image: the question as the user
turn, the answer as the assistant turn (no short-answer prompt: the answers are
paragraphs). A file that is not well-formed XML is counted ("malformed_xml").
The catalogue's 47,457 is the published pair count (paper); the records are fewer, since
folders 10-12 have no answers. Licence: CC BY 4.0, as the repository README states (the
README was not re-read offline here).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from medmo.data.schema import Record
from medmo.data.sources import Drops, register_source, require_path
from medmo.data.sources._conversation import conversation_record
from medmo.data.sources._report import clean


@register_source("medquad", tasks=("vqa",), modality="text", licence="CC BY 4.0",
                 url="https://github.com/abachaa/MedQuAD", splits={"train": 47_457})
def convert(raw: Path, drops: Drops, split: str | None = None) -> Iterator[Record]:
    raw = require_path(raw, "the MedQuAD repository folder (1_CancerGov_QA/*.xml ... 12_MPlusHerbsSupplements_QA/)")
    if split not in (None, "train"):
        raise ValueError(f"MedQuAD has a train split only, not {split!r}")
    files = sorted(raw.glob("*_QA*/*.xml")) if raw.is_dir() else [raw]
    if not files:
        raise FileNotFoundError(f"{raw}: no <N>_<Source>_QA/*.xml; expected the MedQuAD repository folder")
    for path in files:
        with drops.guard(path.name):
            try:
                doc = ET.parse(path).getroot()
            except ET.ParseError as e:
                drops.add("malformed_xml", f"{path.name}: {e}")
                continue
            for pair in doc.iter("QAPair"):
                where = f"{path.parent.name}/{path.name}#{pair.get('pid')}"
                q, a = pair.find("Question"), pair.find("Answer")
                question, answer = clean(q.text if q is not None else ""), clean(a.text if a is not None else "")
                if not question:
                    drops.add("missing_field", f"{where}: no question")
                    continue
                if not answer:
                    drops.add("empty_answer", where)
                    continue
                qid = q.get("qid") or f"{doc.get('id')}-{pair.get('pid')}"
                yield conversation_record(
                    rid=f"medquad/train/{qid}", source="medquad", split="train", modality="text", images=[],
                    turns=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                    meta={"qtype": q.get("qtype"), "focus": clean(doc.findtext("Focus")),
                          "site": doc.get("source"), "url": doc.get("url")})
