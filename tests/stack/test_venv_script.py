"""scripts/venv.sh, behind up.sh and test.sh: install once, then when pyproject.toml changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "venv-stamp-probe"
version = "0"

[tool.setuptools]
py-modules = []
"""

pytestmark = pytest.mark.slow


def ensure_venv(project: Path, spec: str = ".") -> list[str]:
    done = subprocess.run(
        ["bash", "-c", 'source scripts/venv.sh && glitchflow_venv "$1"', "venv.sh", spec],
        cwd=project,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_installs_on_a_fresh_clone_then_only_when_pyproject_changes(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "venv.sh", tmp_path / "scripts" / "venv.sh")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)

    assert ensure_venv(tmp_path) == ["Creating .venv…", "Installing (first time takes ~2 min)…"]
    installed = subprocess.run(
        [tmp_path / ".venv/bin/python", "-m", "pip", "show", "venv-stamp-probe"],
        capture_output=True,
        check=False,
    )
    assert installed.returncode == 0
    assert ensure_venv(tmp_path) == ["Up to date"]

    (tmp_path / "pyproject.toml").write_text(PYPROJECT.replace('version = "0"', 'version = "1"'))
    assert ensure_venv(tmp_path) == ["Installing (first time takes ~2 min)…"]
    assert ensure_venv(tmp_path) == ["Up to date"]
    shown = subprocess.run(
        [tmp_path / ".venv/bin/python", "-m", "pip", "show", "venv-stamp-probe"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Version: 1" in shown.stdout
