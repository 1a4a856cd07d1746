#!/usr/bin/env bash
# Runs every test: the crates' unit tests, then the end-to-end suite against
# the real binary. Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Pin the interpreter so cargo does not rebuild pyo3 when PATH changes.
export PYO3_PYTHON="${PYO3_PYTHON:-$(command -v python3)}"

cargo build --workspace --all-targets
cargo test --workspace
export FERRICORN_BIN="$PWD/target/debug/ferricorn"
python3 -m pytest tests -q
