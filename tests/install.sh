#!/usr/bin/env bash
# Builds the ferricorn wheel (by default a debug build, profile `wheel-dev`:
# a release build takes minutes more and the suite does not need its speed)
# and installs it, with the frameworks the test apps import
# (tests/apps/requirements.txt) and nothing else, into a fresh virtualenv.
# Prints the path of that venv's `ferricorn` command on its last line.
#
#   bash tests/install.sh [VENV [PROFILE [MATURIN OPTIONS...]]]
#       VENV defaults to target/venv-e2e, PROFILE to wheel-dev
#       (benches/run.sh: target/venv-bench release)
#
# maturin comes from PyPI, into its own venv (target/venv-build).
set -euo pipefail
cd "$(dirname "$0")/.."

export PYO3_PYTHON="${PYO3_PYTHON:-$(command -v python3)}"
venv="${1:-target/venv-e2e}"
profile="${2:-wheel-dev}"
shift $(( $# > 2 ? 2 : $# ))
build_venv=target/venv-build
wheels="target/wheels/$profile"
PIP=(-m pip install --quiet --disable-pip-version-check)

if ! "$build_venv/bin/python" -c "import maturin" 2>/dev/null; then
  python3 -m venv --clear "$build_venv"
  "$build_venv/bin/python" "${PIP[@]}" "maturin>=1.9.4,<2"
fi

rm -rf "$wheels"
"$build_venv/bin/maturin" build --quiet --profile "$profile" --interpreter "$PYO3_PYTHON" \
  --out "$wheels" "$@" >&2
wheel=$(ls "$wheels"/ferricorn-*.whl)

python3 -m venv --clear "$venv"
"$venv/bin/python" "${PIP[@]}" "$wheel" -r tests/apps/requirements.txt >&2
echo "$PWD/$venv/bin/ferricorn"
