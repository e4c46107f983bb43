#!/usr/bin/env bash
# Install everything the test suite needs into .venv (created if missing; skipped when
# pyproject.toml has not changed since the last install), then run it.
# Arguments are passed to pytest, e.g. `scripts/test.sh tests/core -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/venv.sh
source scripts/venv.sh
glitchflow_venv '.[test]'
[ "${GLITCHFLOW_SKIP_AIRFLOW_TESTS:-}" = 1 ] || bash scripts/airflow-venv.sh  # Airflow for tests/dags
exec .venv/bin/python -m pytest "$@"
