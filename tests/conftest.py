"""Shared fixtures: the tiny model (built once per session) and the real data in ../shared/data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDMO_SHARED_DATA", ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# where benchmarks find their default data when no --data is given (medmo.eval.benchmarks._data)
os.environ.setdefault("MEDMO_SHARED_DATA", str(SHARED_DATA))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"real benchmark files expected at {SHARED_DATA} (set MEDMO_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A freshly built tiny Qwen3-VL checkpoint folder (untrained)."""
    from medmo.model.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"))
