#!/usr/bin/env bash
# Profiles ferricorn's workers on hello world under wrk load: a flat CPU
# profile (perf, software cpu-clock event: no hardware counters needed) and
# syscall counts per request (strace -c). Run benches/run.sh once first (it
# installs the release wheel into target/venv-bench and installs wrk).
#
#   bash benches/profile.sh [sync|gthread|async|asgi] [SECONDS]
#   (asgi: -k async serving benches/apps/asgihello.py)
#
# Output: target/bench/profile-<class>/{perf.data,report.txt,dso.txt,strace.txt}
set -euo pipefail
cd "$(dirname "$0")/.."
CLASS="${1:-sync}"
SECS="${2:-8}"
BIN="${FERRICORN_BIN:-$PWD/target/venv-bench/bin/ferricorn}"  # benches/run.sh installs it
OUT="$PWD/target/bench/profile-$CLASS"
mkdir -p "$OUT"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
APP=hello:app
KIND="$CLASS"
if [ "$CLASS" = asgi ]; then KIND=async APP=asgihello:app; fi
ARGS=(-w 2 -b "127.0.0.1:$PORT" --chdir "$PWD/benches/apps" --log-level warning -k "$KIND")
[ "$CLASS" = gthread ] && ARGS+=(--threads 8)

setsid "$BIN" "${ARGS[@]}" "$APP" >"$OUT/server.log" 2>&1 &
MASTER=$!
trap 'kill -TERM -- -$MASTER 2>/dev/null || true; sleep 1; kill -KILL -- -$MASTER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
sleep 1
WORKERS=$(pgrep -P "$MASTER" | paste -sd,)
echo "master $MASTER workers $WORKERS"
wrk -t2 -c64 -d1s "http://127.0.0.1:$PORT/" >/dev/null

# 1. CPU profile of both workers (all threads).
perf record -F 1999 -e cpu-clock -p "$WORKERS" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null &
PERF=$!
wrk -t2 -c64 -d"${SECS}s" --latency "http://127.0.0.1:$PORT/" >"$OUT/wrk-perf.txt"
wait $PERF || true
perf report -i "$OUT/perf.data" --no-children --sort sym --percent-limit 0.4 --stdio 2>/dev/null \
  | grep -v '^#' | grep -v '^$' >"$OUT/report.txt" || true
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null \
  | grep -v '^#' | grep -v '^$' >"$OUT/dso.txt" || true

# 2. Syscalls per request: a second server with one worker (keep-alive
# connections would otherwise mostly land on the untraced worker), every
# thread traced; strace slows it, the counts per request hold.
kill -TERM -- -$MASTER 2>/dev/null || true
sleep 1
ARGS[1]=1
setsid "$BIN" "${ARGS[@]}" "$APP" >>"$OUT/server.log" 2>&1 &
MASTER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
ONE=$(pgrep -P "$MASTER" | head -1)
timeout $((SECS + 5)) strace -c -f -p "$ONE" -o "$OUT/strace.txt" &
STRACE=$!
sleep 0.5
wrk -t2 -c64 -d"${SECS}s" "http://127.0.0.1:$PORT/" >"$OUT/wrk-strace.txt"
kill -INT $STRACE 2>/dev/null || true
wait $STRACE 2>/dev/null || true
grep -E "requests in" "$OUT/wrk-perf.txt" "$OUT/wrk-strace.txt"
echo "wrote $OUT"
