#!/usr/bin/env bash
# Runs every test: the crates' unit tests, then the end-to-end suite against
# the real binary. Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Pin the interpreter so cargo does not rebuild pyo3 when PATH changes.
export PYO3_PYTHON="${PYO3_PYTHON:-$(command -v python3)}"

# The end-to-end suite needs pytest and the frameworks of
# test_frameworks.py; install them if missing.
if ! python3 -c "import pytest, flask, django, falcon, bottle, whitenoise" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi

cargo build --workspace --all-targets
cargo test --workspace
export FERRICORN_BIN="$PWD/target/debug/ferricorn"
python3 -m pytest tests -q
