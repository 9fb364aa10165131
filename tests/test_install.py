"""`pip install .` (not editable) into a fresh venv, then `medmo demo --minutes 1` from a folder
that is not the checkout: the recipes ship inside the package and nothing looks for the
source tree (slow: about 7 CPU-minutes, most of them the demo).

The wheel is built with this environment's pip from a copy of the sources and installed into
the new venv with its own pip, so this environment is never touched; the venv then sees this
environment's site-packages through a .pth line (torch and the rest are not installed twice,
nothing is downloaded), which adds the folder without running its .pth files, so the checkout's
editable install stays out of the way.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_installed_package_runs_the_demo_from_anywhere(tmp_path):
    src = tmp_path / "src_copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "recipes", src / "recipes")
    shutil.copytree(ROOT / "src", src / "src", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          src, "-w", wheels], timeout=300)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=300)
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", *wheels.glob("medmo-*.whl")], timeout=300)
    purelib = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (purelib / "medmo_test_deps.pth").write_text(site.getsitepackages()[0] + "\n")

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = _run([py, "-c", "import medmo; print(medmo.__file__)"], cwd=tmp_path, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), f"medmo imported from {where}, not from the fresh install"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _run([venv / "bin" / "medmo", "demo", "--minutes", "1", "--n-train", "256", "--n-eval", "16", "--out", "demo"],
         cwd=elsewhere, env=env, timeout=3000)
    results = json.loads((elsewhere / "demo" / "results.json").read_text())
    assert [r["stage"] for r in results["stages"]] == ["untrained", "stage1_sft", "stage2_sft", "stage3_sft",
                                                       "stage4_grpo"]
    config = yaml.safe_load((elsewhere / "demo" / "stage4_grpo" / "config.yaml").read_text())
    assert [Path(p).name for p in config["config"]["data"]] == ["stage4.jsonl", "stage4_vqa.jsonl"]
