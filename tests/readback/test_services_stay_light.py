"""The services start without gwpy: only an HDF5 answer loads it, in the API."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = "{'gwpy', 'astropy', 'h5py'} & {m.split('.')[0] for m in sys.modules}"


@pytest.mark.parametrize(
    "build",
    [
        "import glitchflow_api; glitchflow_api.create_app().openapi()",
        "import datastore_logic; datastore_logic.create_app()",
        "from databuffer.app import create_app; create_app()",
    ],
)
def test_a_service_builds_without_gwpy(build, tmp_path) -> None:
    code = f"import sys; {build}; print(sorted({HEAVY}))"
    env = {"GLITCHFLOW_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
