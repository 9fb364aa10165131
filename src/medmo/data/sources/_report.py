"""Helpers shared by the report and caption converters (not a source: the leading underscore
keeps it out of the registry).

- `split_sections(text)`: a free-text radiology report -> its sections by name. Headers
  are ALL-CAPS or Title-case words followed by ":" ("FINDINGS:", "Impression:",
  "FINDINGS AND IMPRESSION:", "CONCLUSION:", "INDICATION:", ...), at a line start or
  mid-line (MedEvalKit writes "Findings: ... Impression: ..." on one line); lower-case
  "findings:" inside a sentence is not a header. Aliases fold into one name
  (CONCLUSION/SUMMARY/OPINION -> impression). Like MIMIC-CXR's own section parser,
  when a report has neither findings nor impression, its last paragraph is the
  impression.
- `report_record` builds a task "report" record: MedEvalKit's report prompt, the target
  "Findings: <f> Impression: <i>", answer {"text", "findings", "impression"}.
- `caption_record` builds a task "caption" record: answer {"text"}. Caption records also
  serve image-text retrieval: a retrieval evaluation embeds every image and every
  answer.text of a split and ranks one against the other (recall@k); nothing else is
  needed in the record.
"""
from __future__ import annotations

import re
from typing import Any

from medmo.data.schema import IMAGE_TOKEN, Record
from medmo.model import prompts

_ALIASES = {
    "findings": "findings", "finding": "findings", "findings and impression": "findings",
    "impression": "impression", "impressions": "impression", "conclusion": "impression", "conclusions": "impression",
    "summary": "impression", "opinion": "impression", "diagnosis": "impression",
    "indication": "indication", "indications": "indication", "history": "history", "clinical history": "history",
    "reason for exam": "indication", "reason for examination": "indication", "clinical information": "indication",
    "examination": "examination", "exam": "examination", "type of examination": "examination",
    "technique": "technique", "comparison": "comparison", "comparisons": "comparison",
    "notification": "notification", "recommendation": "recommendation", "recommendations": "recommendation",
    "wet read": "wet_read", "addendum": "addendum",
}


def _header_pattern() -> re.Pattern:
    names = sorted(_ALIASES, key=len, reverse=True)  # longest first: "findings and impression" before "findings"
    variants = []
    for n in names:
        variants += [re.escape(n.upper()), re.escape(n.title()), re.escape(n.capitalize())]
    return re.compile(r"(?<![\w])(" + "|".join(dict.fromkeys(variants)) + r")\s*:")


_HEADER = _header_pattern()
_FINAL_REPORT = re.compile(r"^\s*FINAL REPORT\s*$", re.M)


def clean(text: Any) -> str:
    """One line, single spaces; None/NaN -> ""."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return " ".join(str(text).split())


def split_sections(text: str | None) -> dict[str, str]:
    """Sections of a report by normalized name; always has "findings" and "impression" (maybe "")."""
    text = _FINAL_REPORT.sub("", text or "")
    marks = list(_HEADER.finditer(text))
    out: dict[str, str] = {}
    if marks and text[: marks[0].start()].strip():
        out["preamble"] = clean(text[: marks[0].start()])
    for m, nxt in zip(marks, marks[1:] + [None]):
        name = _ALIASES[m.group(1).lower()]
        body = clean(text[m.end() : nxt.start() if nxt else len(text)])
        out[name] = f"{out[name]} {body}".strip() if out.get(name) else body
    out.setdefault("findings", "")
    out.setdefault("impression", "")
    if not out["findings"] and not out["impression"]:
        paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        out["impression"] = clean(_HEADER.sub("", paragraphs[-1])) if paragraphs else ""
    return out


def report_text(findings: str, impression: str) -> str:
    """The target text: "Findings: <f> Impression: <i>" (MedEvalKit's layout, no trailing period added)."""
    return clean(f"Findings: {clean(findings)} Impression: {clean(impression)}")


def report_record(*, rid: str, source: str, split: str, images: list[str], findings: str, impression: str,
                  modality: str = "xray", meta: dict[str, Any] | None = None) -> Record:
    findings, impression = clean(findings), clean(impression)
    target = report_text(findings, impression)
    prompt = "".join(f"{IMAGE_TOKEN}\n" for _ in images) + prompts.REPORT
    return Record(
        id=rid, source=source, split=split, task="report", modality=modality, images=list(images),
        messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": target}],
        answer={"text": target, "findings": findings, "impression": impression},
        meta={"prompt_version": prompts.PROMPT_VERSION, **(meta or {})},
    )


def caption_record(*, rid: str, source: str, split: str, image: str, caption: str, modality: str = "mixed",
                   prompt: str = prompts.CAPTION, task: str = "caption", meta: dict[str, Any] | None = None) -> Record:
    caption = clean(caption)
    return Record(
        id=rid, source=source, split=split, task=task, modality=modality, images=[image],
        messages=[{"role": "user", "content": f"{IMAGE_TOKEN}\n{prompt}"}, {"role": "assistant", "content": caption}],
        answer={"text": caption},
        meta={"prompt_version": prompts.PROMPT_VERSION, **(meta or {})},
    )


def first_existing(candidates: list) -> str:
    """The first candidate path that exists, else the first one (a missing image is counted at use time)."""
    for c in candidates:
        if c.exists():
            return str(c.resolve())
    return str(candidates[0].resolve())
