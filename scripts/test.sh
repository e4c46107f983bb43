#!/usr/bin/env bash
# Install everything the test suite needs into .venv (created if missing), then run it.
# Arguments are passed to pytest, e.g. `scripts/test.sh tests/core -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
[ "${GLITCHFLOW_SKIP_AIRFLOW_TESTS:-}" = 1 ] || bash scripts/airflow-venv.sh  # Airflow for tests/dags
exec .venv/bin/python -m pytest "$@"
