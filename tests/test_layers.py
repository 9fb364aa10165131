"""The layers of DESIGN.md hold: `lint-imports` keeps every contract in pyproject.toml.

pytest alone catches an import that runs against the layers (make test also runs
lint-imports before pytest). The layers contract must name every package and top-level
module of medmo, so a new module cannot sit outside the layers unnoticed; and no two
modules may import each other, directly or around a loop, lazily or not (an import
circle that no contract sees).
"""
from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import medmo

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+
grimp = pytest.importorskip("grimp", reason="import-linter (the dev extra) brings grimp")


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_lint_imports_keeps_every_contract():
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), f"{exe} missing: install the dev extra (pip install -e '.[dev]')"
    out = subprocess.run([str(exe), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"lint-imports failed:\n{out.stdout}\n{out.stderr}"


def test_layers_contract_names_every_module():
    (layers,) = [c for c in _contracts() if c["type"] == "layers" and c.get("name", "").startswith("Layers:")]
    named = {m.strip().strip("()") for layer in layers["layers"] for m in layer.split("|")}
    present = {f"medmo.{m.name}" for m in pkgutil.iter_modules(medmo.__path__)}
    assert present - named == set(), f"add these to the layers contract in pyproject.toml: {sorted(present - named)}"


def _circles(graph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    group = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        group.append(w)
                        if w == v:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return found


def test_no_import_circles():
    assert _circles(grimp.build_graph("medmo", cache_dir=None)) == []


@pytest.mark.parametrize("edges, expected", [
    ({"a": ["b"], "b": ["a"]}, [["a", "b"]]),  # a direct circle
    ({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}, [["a", "b", "c"]]),  # around a loop; d only enters it
    ({"a": ["b", "c"], "b": ["c"], "c": []}, []),  # a diamond is no circle
])
def test_circle_finder(edges, expected):
    class Graph:
        modules = set(edges)

        @staticmethod
        def find_modules_directly_imported_by(m):
            return set(edges[m])

    assert _circles(Graph) == expected

