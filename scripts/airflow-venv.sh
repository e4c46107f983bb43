#!/usr/bin/env bash
# Create or update the Airflow virtual environment used by the DAG tests and `glitchflow up --airflow`.
# Airflow lives in its own venv (default .venv-airflow/, or $GLITCHFLOW_AIRFLOW_VENV) because its
# dependency set is large and pinned; the project's .venv never imports it.
# Skips all work when the venv's stamp matches the pinned requirements (`--force` reinstalls).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${GLITCHFLOW_AIRFLOW_VENV:-.venv-airflow}
python=${PYTHON:-python3}
requirements=dags/requirements-airflow.txt
constraints=dags/constraints-airflow.txt
stamp="$venv/.glitchflow-stamp"
want=$(cat "$requirements" "$constraints" | sha256sum | cut -d' ' -f1)
if [ "${1:-}" != "--force" ] && [ -x "$venv/bin/airflow" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "airflow-venv: installing Airflow into $venv (about a minute on first use)" >&2
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r "$requirements" -c "$constraints"
echo "$want" > "$stamp"
