#!/usr/bin/env bash
# Run the whole pipeline locally: databuffer, datastore_logic and glitchflow_api as real processes,
# data in ./glitchflow-data, and a demo stream until the 8 MiB buffer freezes. Installs the project
# into .venv first when pyproject.toml changed since the last install. Arguments go to
# `glitchflow up` (see `scripts/up.sh --help`; `--no-demo` starts the services only).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/venv.sh
source scripts/venv.sh
glitchflow_venv .
exec .venv/bin/glitchflow up --demo --max-size 8MiB "$@"
