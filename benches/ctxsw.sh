#!/usr/bin/env bash
# Context switches and CPU per request of one ferricorn configuration on
# hello world: steadier than req/s on a shared machine, because they do
# not depend on how much CPU the server got. Counts every thread of both
# workers (/proc/PID/task/*/status, /proc/PID/stat) over one wrk run.
#
#   bash benches/ctxsw.sh FERRICORN PORT "-k gthread --threads 8" [CONNS] [SECONDS]
set -euo pipefail
BIN=$1 PORT=$2 ARGS=$3 CONNS=${4:-64} SECS=${5:-3}
cd "$(dirname "$0")/apps"
# shellcheck disable=SC2086  # ARGS is a list of flags
setsid "$BIN" -w 2 -b "127.0.0.1:$PORT" --log-level warning $ARGS hello:app >/dev/null 2>&1 &
MASTER=$!
trap 'kill -TERM -- -$MASTER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
sleep 0.5
WORKERS=$(pgrep -P "$MASTER")
wrk -t2 -c"$CONNS" -d1s "http://127.0.0.1:$PORT/" >/dev/null
switches() {
  local total=0
  for w in $WORKERS; do
    for f in /proc/"$w"/task/*/status; do
      total=$((total + $(awk '/^(non)?voluntary_ctxt_switches/{n+=$2} END{print n}' "$f")))
    done
  done
  echo "$total"
}
ticks() {
  local total=0
  for w in $WORKERS; do total=$((total + $(awk '{print $14+$15}' /proc/"$w"/stat))); done
  echo "$total"
}
s0=$(switches) t0=$(ticks)
out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$PORT/")
s1=$(switches) t1=$(ticks)
n=$(echo "$out" | awk '/requests in/{print $1}')
hz=$(getconf CLK_TCK)
python3 -c "print(f'[$ARGS c=$CONNS] requests {$n} context switches/request {($s1-$s0)/$n:.2f} CPU µs/request {($t1-$t0)/$hz*1e6/$n:.1f}')"
