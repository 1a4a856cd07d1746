"""What StatsD and --metrics-bind cost per request: alternating rounds of
`wrk -t2 -c16` against the hello app, -w 2, one fresh server per run; prints
req/s and the workers' CPU per request (utime+stime from /proc, which the
other load on a shared machine disturbs far less than req/s), with medians.

    bash tests/install.sh target/venv-bench release
    python3 benches/ops_cost.py target/venv-bench/bin/ferricorn [ROUNDS [SECONDS]]

StatsD datagrams go to a bound UDP socket that is never read (the kernel
queues, then drops): the sender's cost without a collector's CPU.
"""
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "apps")


def worker_cpu(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run(binary, extra, port, seconds):
    cmd = [binary, "-b", "127.0.0.1:%d" % port, "-w", "2", "--no-control-socket", *extra,
           "hello:app"]
    proc = subprocess.Popen(cmd, cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        pids, deadline = [], time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            found = re.search(r"Booting worker with pid: (\d+)", proc.stderr.readline().decode())
            if found:
                pids.append(int(found.group(1)))
        url = "http://127.0.0.1:%d/" % port
        subprocess.run(["wrk", "-t2", "-c16", "-d1s", url], capture_output=True, check=True)
        before = worker_cpu(pids)
        out = subprocess.run(["wrk", "-t2", "-c16", "-d%ds" % seconds, url],
                             capture_output=True, text=True, check=True).stdout
        cpu = worker_cpu(pids) - before
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), cpu / requests * 1e6
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def main():
    binary = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    configs = {
        "off": [],
        "statsd": ["--statsd-host", "127.0.0.1:%d" % sink.getsockname()[1]],
        "metrics-bind": ["--metrics-bind", "127.0.0.1:0"],
    }
    results = {name: [] for name in configs}
    port = 18960
    for round_ in range(rounds):
        for name, extra in configs.items():
            port += 1
            rps, us = run(binary, extra, port, seconds)
            results[name].append((rps, us))
            print("round %d %-12s %8.0f req/s %6.1f us CPU/req" % (round_, name, rps, us),
                  flush=True)
    for name, runs in results.items():
        print("%-12s median %8.0f req/s %6.2f us CPU/req" % (
            name, statistics.median(r for r, _ in runs), statistics.median(u for _, u in runs)))


if __name__ == "__main__":
    main()
