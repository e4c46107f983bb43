#!/usr/bin/env bash
# Install the services into .venv (created if missing) and run the whole pipeline locally:
# databuffer, datastore_logic and glitchflow_api as real processes, data in ./glitchflow-data,
# and a demo stream until the buffer freezes. Arguments go to `glitchflow up`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/glitchflow up --demo --max-size 8MiB "$@"
