"""`medmo data sources`: every registered data source with what a user needs to fetch it.

    medmo data sources              # a markdown table: datasets first, then the importers

One row per source: modality, tasks, licence, where to get the release and the records
its authors publish per split ("?" where no count was verified). The facts come from each
source's `register_source(...)` call (medmo.data.sources), the one place they are written;
the importers (COCO, YOLO, masks: generic formats, not datasets) are listed apart.
"""
from __future__ import annotations

from medmo.data.sources import SOURCES, Source


def split_sizes(src: Source) -> str:
    return ", ".join(f"{split} {n:,}" for split, n in src.splits) or "?"


def _row(src: Source) -> str:
    cells = (src.name, src.modality, ", ".join(src.tasks), src.licence, src.url or "see the docstring", split_sizes(src))
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"


def catalogue() -> str:
    """The markdown listing of every source, named datasets first and importers apart."""
    sources = [SOURCES.get(n) for n in SOURCES.names()]
    head = ["| source | modality | tasks | licence | where to get it | records per split |", "|---|---|---|---|---|---|"]
    datasets = [s for s in sources if not s.importer]
    importers = [s for s in sources if s.importer]
    return "\n".join([f"# Data sources: {len(datasets)} datasets", "", *head, *map(_row, datasets), "",
                      f"## Importers ({len(importers)}): generic formats, not datasets", "", *head,
                      *map(_row, importers), ""])
