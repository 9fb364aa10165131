"""The shared label vocabulary: any release's spelling of a finding -> one canonical name.

The table is data, not code: src/medmo/data/labels.yaml (shipped as package data) maps
each canonical name to the spellings releases use, so "Nodule/Mass" (VinDr-CXR), "Nodule"
(NIH) and "lung nodule" are one label across sources:

    >>> canonical_label("Nodule/Mass"), canonical_label(" lung_nodule "), canonical_label("RBC")
    ('Nodule', 'Nodule', 'Red blood cell')
    >>> canonical_label("Something new")   # not in the table: kept as the release spells it
    'Something new'

Matching ignores case, surrounding spaces, and "_" / "-" / repeated spaces. The file is
read once; an alias listed under two canonical names is a ValueError naming both.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

TABLE = Path(__file__).with_name("labels.yaml")


def normalize(name: str) -> str:
    """The matching key of a label: lower case, "_"/"-" as spaces, spaces collapsed."""
    return re.sub(r"[\s_\-]+", " ", str(name)).strip().lower()


def load_vocabulary(path: Path = TABLE) -> dict[str, str]:
    """{normalized alias: canonical name} from a vocabulary YAML (canonical: [aliases])."""
    table = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected a mapping of canonical label -> list of aliases")
    lookup: dict[str, str] = {}
    for canonical, aliases in table.items():
        if not isinstance(aliases, list):
            raise ValueError(f"{path}: {canonical!r} must map to a list of aliases, got {type(aliases).__name__}")
        for alias in [canonical, *aliases]:
            key = normalize(alias)
            if lookup.get(key, canonical) != canonical:
                raise ValueError(f"{path}: alias {alias!r} belongs to both {lookup[key]!r} and {canonical!r}")
            lookup[key] = str(canonical)
    return lookup


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, str]:
    return load_vocabulary()


def canonical_label(name: str) -> str:
    """The vocabulary's canonical name for `name`, or `name` stripped when the table lacks it."""
    return vocabulary().get(normalize(name), str(name).strip())


def canonical_names() -> set[str]:
    return set(vocabulary().values())
