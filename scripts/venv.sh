# shellcheck shell=bash
# Sourced by up.sh and test.sh, from the repository root.
#
# glitchflow_venv SPEC: create .venv if missing and `pip install -e SPEC` into it, unless SPEC was
# already installed from this very pyproject.toml: a stamp in .venv holds the file's hash, so a
# fresh clone (no .venv) installs everything and an unchanged one starts at once.
glitchflow_venv() {
    local spec=$1 python=${PYTHON:-python3} extras stamp hash
    extras=${spec//[^a-z]/}
    stamp=".venv/.installed${extras:+-$extras}"
    if [ ! -x .venv/bin/python ]; then
        echo "Creating .venv…"
        "$python" -m venv .venv
    fi
    hash=$(.venv/bin/python -c \
        'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
        echo "Up to date"
        return
    fi
    echo "Installing (first time takes ~2 min)…"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
    echo "$hash" >"$stamp"
}
