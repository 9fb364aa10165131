"""Packaging: dependency bounds, what each extra must bring, and `medmo --version`.

Static and offline: requirements are read from pyproject.toml (the editable install's
metadata may predate an edit), imports from the source's syntax trees, and what each
requirement brings along from the installed distributions' metadata (importlib.metadata).
An import inside `try: ... except ImportError` is optional (the code says what to install
when it fails) and needs no requirement.
"""
from __future__ import annotations

import ast
import re
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# the modules that need an extra, by module-name prefix; every other module is the core
SURFACE = {
    "train": ("medmo.train.",),
    "serve": ("medmo.serve.",),
    "eval": ("medmo.eval.judge", "medmo.eval.backends"),  # the LLM judge and the openai backend
    "report": ("medmo.eval.model_metrics",),               # RaTEScore
}
# the list: each must have a floor and an upper bound
BOUNDED = ("torch", "transformers", "trl", "peft", "accelerate", "pydicom")
# libraries only tests compare medmo's own metrics against
REFERENCE_ONLY = ("rouge-score", "nltk", "pycocoevalcap")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def group(name: str) -> list[Requirement]:
    p = project()
    return [Requirement(r) for r in (p["dependencies"] if name == "core" else p["optional-dependencies"][name])]


def closure(reqs: list[Requirement]) -> set[str]:
    """The distributions the requirements install: themselves and, through the installed
    metadata, everything they require in turn (markers evaluated here, no extras of theirs)."""
    seen: set[str] = set()
    todo = list(reqs)
    while todo:
        r = todo.pop()
        if norm(r.name) in seen:
            continue
        seen.add(norm(r.name))
        try:
            deps = requires(r.name) or []
        except PackageNotFoundError:  # not installed here (RaTEScore, deepspeed): itself only
            continue
        for line in deps:
            dep = Requirement(line)
            if dep.marker is None or dep.marker.evaluate({"extra": ""}):
                todo.append(dep)
    return seen


def _guarded(tree: ast.AST) -> set[int]:
    """ids of import nodes inside a try whose handlers catch ImportError (or a parent of it)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            h.type is None or any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError",
                                                                      "Exception") for n in ast.walk(h.type))
            for h in node.handlers
        ):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return out


def third_party_imports(path: Path, local: set[str] = frozenset()) -> set[str]:
    """Top-level names of the non-optional third-party imports anywhere in a file."""
    tree = ast.parse(path.read_text())
    optional = _guarded(tree)
    names = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in {"medmo", "__future__", *local}}


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(SRC).with_suffix("").parts): p for p in sorted((SRC / "medmo").rglob("*.py"))}


def extra_of(module: str) -> str:
    return next((extra for extra, prefixes in SURFACE.items() if module.startswith(prefixes)), "core")


@cache
def import_to_dists() -> dict[str, list[str]]:
    return packages_distributions()


def uncovered(names: set[str], allowed: set[str]) -> dict[str, list[str]]:
    """{import name: its distributions} for the names no allowed distribution provides. A
    distribution not installed here is taken to be named as it imports (RaTEScore)."""
    dists = import_to_dists()
    return {n: dists.get(n, ["<not installed>"]) for n in sorted(names)
            if not {norm(d) for d in dists.get(n, [n])} & allowed}


@pytest.mark.parametrize("extra", ["core", *SURFACE])
def test_each_extra_covers_the_imports_of_its_modules(extra):
    allowed = closure(group("core") + ([] if extra == "core" else group(extra)))
    surface = {m: p for m, p in modules().items() if extra_of(m) == extra}
    assert surface, f"no module needs the {extra!r} extra: SURFACE is stale"
    missing = {m: bad for m, p in surface.items() if (bad := uncovered(third_party_imports(p), allowed))}
    assert not missing, (f"imports that `pip install medmo[{extra}]` does not bring (add the distribution to "
                         f"that extra, or guard the import with try/except ImportError): {missing}")


def test_make_venv_brings_everything_the_tests_import():
    extras = re.search(r"-e '\.\[([a-z,]+)\]'", (ROOT / "Makefile").read_text()).group(1).split(",")
    allowed = closure(group("core") + [r for e in extras for r in group(e)])
    local = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"tests"}
    missing = {p.name: bad for p in sorted((ROOT / "tests").glob("*.py"))
               if (bad := uncovered(third_party_imports(p, local), allowed))}
    assert not missing, f"tests import what `make venv` ({extras}) does not install: {missing}"


@pytest.mark.parametrize("name", BOUNDED)
def test_core_dependencies_have_a_floor_and_an_upper_bound(name):
    req = next(r for g in ["core", *project()["optional-dependencies"]] for r in group(g) if norm(r.name) == name)
    ops = {s.operator for s in req.specifier}
    assert ops & {">=", ">", "~=", "=="} and ops & {"<", "<=", "~=", "=="}, f"{req}: needs a floor and an upper bound"


def test_torch_floor_and_bound():
    torch = next(r for r in group("core") if r.name == "torch")
    assert not torch.specifier.contains("2.9.1") and torch.specifier.contains("2.10.0")  # 2.9's Conv3d regression
    assert not torch.specifier.contains("2.15.0")  # the next minor after the one CI runs


@pytest.mark.parametrize("extra", ["core", "train", "eval", "serve", "dev"])
def test_installed_releases_fit_the_bounds(extra):
    # what make venv installed is what the suite runs on: it must lie inside the declared ranges
    out = []
    for req in group(extra):
        try:
            have = version(req.name)
        except PackageNotFoundError:
            out.append(f"{req} (not installed)")
            continue
        if not req.specifier.contains(have, prereleases=True):
            out.append(f"{req} (installed {have})")
    assert not out, out


def test_reference_libraries_are_dev_only():
    extras = project()["optional-dependencies"]
    for name, reqs in [("core", project()["dependencies"]), *extras.items()]:
        names = {norm(Requirement(r).name) for r in reqs}
        assert (set(REFERENCE_ONLY) <= names) == (name == "dev"), name
    dists = import_to_dists()
    runtime = set().union(*(third_party_imports(p) for p in modules().values()))
    assert not {n for n in runtime if {norm(d) for d in dists.get(n, [])} & set(REFERENCE_ONLY)}


def test_vllm_is_not_an_extra():
    # every vLLM release pins one exact torch (0.33.0: torch==2.14.0), never the 2.14.1 CI runs
    reqs = [Requirement(r) for rs in project()["optional-dependencies"].values() for r in rs]
    assert "vllm" not in {norm(r.name) for r in reqs}


# ------------------------------------------------------------------------------ --version
def test_version_prints_the_package_version_and_git_sha(capsys):
    from medmo.cli import main
    from medmo.config import git_sha

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == f"medmo {version('medmo')} (git {git_sha()})"
    assert re.fullmatch(r"medmo \d+\.\d+\.\d+\S* \(git [0-9a-f]{7,}\)", out)  # this is a checkout


def test_version_outside_a_checkout(monkeypatch):
    import medmo.config
    from medmo.cli import version as cli_version

    monkeypatch.setattr(medmo.config, "git_sha", lambda: None)
    assert cli_version() == f"medmo {version('medmo')}"
