#!/usr/bin/env bash
# One command from a fresh clone: installs the load generator and the peer
# servers, builds the ferricorn wheel (release) into target/venv-bench, the
# Rust-only hello ceiling and the websocket load generator, and runs
# benches/bench.py, which prints a markdown table of medians.
#
#   bash benches/run.sh            # full run: 6 apps, all configs (~18 min)
#   bash benches/run.sh --quick    # hello world only, one round (~1.5 min)
#   bash benches/run.sh --apps flask --rounds 3   # any bench.py option
#
# Results also land in target/bench/ (results.md, results.json, logs/).
set -euo pipefail
cd "$(dirname "$0")/.."

export PYO3_PYTHON="${PYO3_PYTHON:-$(command -v python3)}"
PIP=(python3 -m pip install --quiet --disable-pip-version-check)

# Peers and the Flask app (versions: whatever pip resolves; bench.py prints them).
python3 -c "import gunicorn, gevent, granian, flask, uvicorn, uvloop, httptools, websockets" \
  2>/dev/null || "${PIP[@]}" gunicorn gevent granian flask uvicorn uvloop httptools websockets

if ! command -v wrk >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y wrk >/dev/null 2>&1 \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi

ferricorn=$(bash tests/install.sh target/venv-bench release | tail -n 1)
cargo build --release --manifest-path benches/hello-rs/Cargo.toml --target-dir target
cargo build --release --manifest-path benches/ws-load/Cargo.toml --target-dir target

exec python3 benches/bench.py \
  --ferricorn "$ferricorn" \
  --hello-rs target/release/hello-rs \
  --ws-load target/release/ws-load "$@"
