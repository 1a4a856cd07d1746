#!/usr/bin/env python3
"""Side-by-side HTTP benchmark: ferricorn vs granian vs gunicorn (and, for
ASGI apps, uvicorn).

Invoked by benches/run.sh (which installs the tools and builds the
binaries); usable on its own once they are there:

    python3 benches/bench.py --ferricorn target/venv-bench/bin/ferricorn \
        --hello-rs target/release/hello-rs --ws-load target/release/ws-load \
        [--quick] [--apps hello,flask]

For every app in benches/apps/ it starts every server configuration at once
(each on its own 127.0.0.1 port, `-w 2`), records each one's idle RSS, then
runs rounds: in every round each server in turn gets a 1 s wrk warm-up and a
timed wrk run at each connection count, so slow drifts of the shared machine
hit every server alike. CPU per request is the server's whole process tree's
utime+stime (from /proc) over the run, divided by the requests wrk counted.
The table reports the median of the rounds. WSGI apps run on the WSGI
configurations, ASGI apps on the ASGI ones (ferricorn -k async, granian
--interface asgi, uvicorn with uvloop and httptools, gunicorn -k asgi); the
websocket echo is driven by benches/ws-load instead of wrk, and its "req/s"
column counts echoed messages.

Every server is started in its own process group and killed with it, on
success, error or Ctrl-C. Every load is bounded by wrk's duration.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS_DIR = HERE / "apps"
LUA_DIR = HERE / "lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
WORKERS = 2


# --------------------------------------------------------------------------
# Apps and server configurations


@dataclass
class App:
    name: str
    module: str  # benches/apps/<module>.py, variable `app`
    lua: str | None  # wrk workload script in benches/lua/
    path: str = "/"
    rounds: int = 2
    duration: float = 3.0
    interface: str = "wsgi"  # which server configurations run it
    websocket: bool = False  # driven by ws-load (messages), not wrk


APPS = [
    App("hello", "hello", None, rounds=3, duration=5.0),
    App("body10k", "body10k", None),
    App("flask", "flaskapp", "flask.lua"),
    App("echo1m", "echo", "post1m.lua"),
    App("asgi-hello", "asgihello", None, rounds=3, interface="asgi"),
    App("ws-echo", "asgihello", None, rounds=3, interface="asgi", websocket=True),
]


@dataclass
class Server:
    name: str
    family: str  # ferricorn | granian | gunicorn | rust
    argv: list[str]  # with {port} {module} {apps} placeholders
    only: tuple[str, ...] = ()  # apps this config runs (empty: all of its interface)
    interface: str = "wsgi"


def servers(ferricorn: str, hello_rs: str | None, baselines: dict[str, str] | None = None) -> list[Server]:
    fc = [ferricorn, "-w", str(WORKERS), "-b", "127.0.0.1:{port}", "--chdir", "{apps}",
          "--log-level", "warning"]
    granian = ["granian", "--workers", str(WORKERS), "--host", "127.0.0.1", "--port", "{port}",
               "--working-dir", "{apps}", "--log-level", "warning"]
    gr = granian + ["--interface", "wsgi", "--no-ws"]
    gu = ["gunicorn", "-w", str(WORKERS), "-b", "127.0.0.1:{port}", "--chdir", "{apps}",
          "--log-level", "warning"]
    out = [
        Server("ferricorn sync", "ferricorn", fc + ["-k", "sync", "{module}:app"]),
        Server("ferricorn gthread 2", "ferricorn", fc + ["-k", "gthread", "--threads", "2", "{module}:app"]),
        Server("ferricorn gthread 8", "ferricorn", fc + ["-k", "gthread", "--threads", "8", "{module}:app"]),
        Server("ferricorn async", "ferricorn", fc + ["-k", "async", "{module}:app"]),
        Server("granian", "granian", gr + ["{module}:app"]),
        Server("granian bt1", "granian", gr + ["--blocking-threads", "1", "{module}:app"]),
        Server("gunicorn sync", "gunicorn", gu + ["-k", "sync", "{module}:app"]),
        Server("gunicorn gthread 8", "gunicorn", gu + ["-k", "gthread", "--threads", "8", "{module}:app"]),
        Server("gunicorn gevent", "gunicorn", gu + ["-k", "gevent", "{module}:app"]),
    ]
    asgi = [
        Server("ferricorn async", "ferricorn", fc + ["-k", "async", "{module}:app"], interface="asgi"),
        # The stdlib loop: ferricorn's loop serves no sockets, where uvloop gains.
        Server("ferricorn async asyncio", "ferricorn",
               fc + ["-k", "async", "--asgi-loop", "asyncio", "{module}:app"], interface="asgi"),
        Server("granian", "granian", granian + ["--interface", "asgi", "{module}:app"],
               interface="asgi"),
        Server("uvicorn", "uvicorn", ["uvicorn", "--workers", str(WORKERS), "--host", "127.0.0.1",
                                      "--port", "{port}", "--app-dir", "{apps}", "--loop", "uvloop",
                                      "--http", "httptools", "--log-level", "warning",
                                      "--no-access-log", "{module}:app"], interface="asgi"),
        Server("gunicorn asgi", "gunicorn", gu + ["-k", "asgi", "{module}:app"], interface="asgi"),
    ]
    out += asgi
    # The same configurations on other builds, side by side (before/after).
    out += [Server(f"{s.name} ({label})", "baseline", [command] + s.argv[1:], s.only, s.interface)
            for label, command in (baselines or {}).items() for s in out if s.family == "ferricorn"]
    if hello_rs:
        out.append(Server("rust-only hello", "rust", [hello_rs, "127.0.0.1:{port}", str(WORKERS)],
                          only=("hello",)))
    return out


# --------------------------------------------------------------------------
# /proc


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(root: int) -> list[int]:
    """root and all its descendants."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


def workers_of(root: int) -> list[int]:
    """The processes that serve requests: the master's children (minus
    helper processes that hold less than 1/4 of the largest one's memory,
    such as multiprocessing's resource tracker), or the root itself."""
    kids = _children_map().get(root, [])
    if not kids:
        return [root]
    sizes = {pid: rss_bytes(pid) for pid in kids}
    biggest = max(sizes.values())
    return [pid for pid, size in sizes.items() if size >= biggest / 4]


def rss_per_worker(root: int) -> float:
    pids = workers_of(root)
    return statistics.mean(rss_bytes(p) for p in pids) if pids else 0.0


# --------------------------------------------------------------------------
# Running servers


RUNNING: list[subprocess.Popen] = []


def kill_all() -> None:
    for proc in RUNNING:
        stop(proc)
    RUNNING.clear()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None and not _group_alive(proc.pid):
        return
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(proc.pid):
                return
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    server: Server
    port: int
    proc: subprocess.Popen
    log: Path
    idle_rss: float = 0.0
    loaded_rss: float = 0.0
    samples: dict[int, list[dict]] = field(default_factory=dict)  # conns -> runs
    failed: str | None = None


def start(server: Server, app: App, logdir: Path) -> Running:
    port = free_port()
    argv = [a.format(port=port, module=app.module, apps=str(APPS_DIR)) for a in server.argv]
    log = logdir / f"{app.name}-{server.name.replace(' ', '_')}.log"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=str(APPS_DIR))
    RUNNING.append(proc)
    return Running(server, port, proc, log)


def wait_ready(run: Running, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{run.port}/"
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            run.failed = f"exited with {run.proc.returncode} at startup (log: {run.log})"
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    run.failed = f"not ready after {timeout:.0f} s (log: {run.log})"
    return False


def wait_workers(run: Running, timeout: float = 20.0) -> None:
    """Waits until the server has all its worker processes (some servers
    answer as soon as the first one is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.server.family in ("ferricorn", "baseline", "gunicorn", "granian", "uvicorn", "rust"):
            if len(workers_of(run.proc.pid)) >= WORKERS:
                return
        time.sleep(0.2)


# --------------------------------------------------------------------------
# wrk


STATUS_LUA = (LUA_DIR / "status.lua").read_text()


def lua_script(app: App, tmp: Path) -> Path:
    body = (LUA_DIR / app.lua).read_text() if app.lua else ""
    path = tmp / f"{app.name}.lua"
    path.write_text(body + "\n" + STATUS_LUA)
    return path


def wrk(port: int, app: App, script: Path, conns: int, duration: float) -> dict:
    threads = min(conns, 2)
    argv = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration:g}s", "--timeout", "4s",
            "-s", str(script), f"http://127.0.0.1:{port}{app.path}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    match = re.search(r"^BENCHJSON (\{.*\})$", out.stdout, re.M)
    if not match:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    return json.loads(match.group(1))


WS_LOAD: str | None = None  # path of benches/ws-load, from --ws-load


def ws_load(port: int, app: App, conns: int, duration: float) -> dict:
    if WS_LOAD is None:
        raise RuntimeError("no --ws-load binary given")
    argv = [WS_LOAD, f"ws://127.0.0.1:{port}{app.path}", str(conns), f"{duration:g}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    match = re.search(r"^BENCHJSON (\{.*\})$", out.stdout, re.M)
    if not match:
        raise RuntimeError(f"ws-load failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    return json.loads(match.group(1))


def load(port: int, app: App, script: Path, conns: int, duration: float) -> dict:
    """One timed run of the app's load generator."""
    if app.websocket:
        return ws_load(port, app, conns, duration)
    return wrk(port, app, script, conns, duration)


def measure(run: Running, app: App, script: Path, conns: int, duration: float) -> dict:
    pids = tree(run.proc.pid)
    before = cpu_ticks(pids)
    result = load(run.port, app, script, conns, duration)
    pids_after = tree(run.proc.pid)
    after = cpu_ticks(pids_after)
    if set(pids) != set(pids_after):
        result["tree_changed"] = True  # a worker died or was replaced
    requests = max(result["requests"], 1)
    secs = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / secs if secs else 0.0
    result["cpu_us"] = (after - before) / CLK_TCK * 1e6 / requests
    return result


# --------------------------------------------------------------------------
# Report


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(run: Running, conns: int) -> dict | None:
    samples = run.samples.get(conns) or []
    if not samples:
        return None
    return {
        "rps": med([s["rps"] for s in samples]),
        "p50": med([s["p50"] for s in samples]),
        "p99": med([s["p99"] for s in samples]),
        "cpu_us": med([s["cpu_us"] for s in samples]),
        "non2xx": sum(s["non2xx"] for s in samples),
        "errors": sum(s["errors"] for s in samples),
        "rounds": len(samples),
    }


def fmt_lat(us: float) -> str:
    return f"{us / 1000:.2f}" if us == us else "-"


def report(results: dict[str, list[Running]], conns_list: list[int]) -> str:
    lines = []
    problems = []
    for app_name, runs in results.items():
        lines.append(f"\n### {app_name}\n")
        lines.append("| server | conns | req/s | p50 ms | p99 ms | CPU µs/req | RSS/worker idle MB | "
                     "RSS/worker loaded MB | best ferricorn ÷ this (req/s) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for conns in conns_list:
            sums = {r.server.name: summarize(r, conns) for r in runs}
            fc_best = max((s["rps"] for r in runs if r.server.family == "ferricorn"
                           and (s := sums[r.server.name])), default=0.0)
            for r in runs:
                s = sums[r.server.name]
                if r.failed or s is None:
                    lines.append(f"| {r.server.name} | {conns} | failed: {r.failed or 'no data'} |||||||")
                    continue
                ratio = fc_best / s["rps"] if s["rps"] else float("inf")
                ratio_s = "—" if r.server.family == "ferricorn" else f"{ratio:.2f}×"
                lines.append(
                    f"| {r.server.name} | {conns} | {s['rps']:,.0f} | {fmt_lat(s['p50'])} | "
                    f"{fmt_lat(s['p99'])} | {s['cpu_us']:.0f} | {r.idle_rss / 2**20:.1f} | "
                    f"{r.loaded_rss / 2**20:.1f} | {ratio_s} |")
                if s["non2xx"] or s["errors"]:
                    problems.append(f"{app_name} / {r.server.name} / {conns} conns: "
                                    f"{s['non2xx']} non-2xx, {s['errors']} socket errors "
                                    f"(connect/read/write/timeout) over {s['rounds']} runs")
    lines.append("")
    lines.extend(targets(results, conns_list))
    if problems:
        lines.append("\n**Errors seen by wrk** (socket errors include the connections a "
                     "`Connection: close` server drops under load):\n")
        lines.extend(f"- {p}" for p in problems)
    return "\n".join(lines)


def targets(results: dict[str, list[Running]], conns_list: list[int]) -> list[str]:
    """The issue's targets, measured against this run."""
    out = ["### Targets\n", "| target | app | conns | measured | goal | met |",
           "|---|---|---:|---:|---:|:---:|"]

    def get(app: str, name: str, conns: int) -> dict | None:
        for r in results.get(app, []):
            if r.server.name == name and not r.failed:
                return summarize(r, conns)
        return None

    def best(app: str, family: str, conns: int) -> tuple[str, dict] | None:
        cands = [(r.server.name, s) for r in results.get(app, [])
                 if r.server.family == family and not r.failed and (s := summarize(r, conns))]
        return max(cands, key=lambda c: c[1]["rps"]) if cands else None

    def row(label: str, app: str, conns: int | str, value: float | None, goal: float, higher: bool) -> None:
        if value is None:
            out.append(f"| {label} | {app} | {conns} | n/a | {goal:g}× | |")
            return
        met = value >= goal if higher else value <= goal
        out.append(f"| {label} | {app} | {conns} | {value:.2f}× | {'≥' if higher else '≤'} {goal:g}× | "
                   f"{'yes' if met else 'no'} |")

    for app, goal in (("hello", 1.5), ("flask", 1.3), ("echo1m", 1.2), ("body10k", 1.2)):
        if app not in results:
            continue
        for conns in conns_list:
            fc, gr = best(app, "ferricorn", conns), best(app, "granian", conns)
            if not (fc and gr):
                continue
            row(f"req/s: {fc[0]} ÷ {gr[0]}", app, conns, fc[1]["rps"] / gr[1]["rps"], goal, True)
            if app == "hello":
                row("p99: same pair (lower is better)", app, conns, fc[1]["p99"] / gr[1]["p99"], 1.0, False)
                row("CPU/req: same pair", app, conns, fc[1]["cpu_us"] / gr[1]["cpu_us"], 0.6, False)
                rust = get(app, "rust-only hello", conns)
                if rust and rust["cpu_us"]:
                    row(f"CPU/req: {fc[0]} ÷ rust-only hello", app, conns,
                        fc[1]["cpu_us"] / rust["cpu_us"], 2.0, False)
    for app, peer, goal in (("asgi-hello", "granian", 1.5), ("asgi-hello", "uvicorn", 2.0),
                            ("ws-echo", "granian", 1.5)):
        if app not in results:
            continue
        for conns in conns_list:
            fc, other = best(app, "ferricorn", conns), best(app, peer, conns)
            if fc and other:
                row(f"{'messages' if app == 'ws-echo' else 'req/s'}: {fc[0]} ÷ {other[0]}", app, conns,
                    fc[1]["rps"] / other[1]["rps"], goal, True)
    if "hello" in results:
        for conns in conns_list:
            for mine, theirs, goal in (("ferricorn gthread 8", "gunicorn gthread 8", 8.0),
                                       ("ferricorn sync", "gunicorn sync", 5.0)):
                a, b = get("hello", mine, conns), get("hello", theirs, conns)
                row(f"req/s: {mine} ÷ {theirs}", "hello", conns,
                    a["rps"] / b["rps"] if a and b and b["rps"] else None, goal, True)
        fc = [r for r in results["hello"] if r.server.family == "ferricorn" and not r.failed]
        gs = [r for r in results["hello"] if r.server.name == "gunicorn sync" and not r.failed]
        if fc and gs and gs[0].idle_rss:
            worst = max(fc, key=lambda r: r.idle_rss)
            row(f"idle RSS/worker: {worst.server.name} (largest) ÷ gunicorn sync", "hello", "idle",
                worst.idle_rss / gs[0].idle_rss, 1.0, False)
    return out


# --------------------------------------------------------------------------
# Main


def versions(ferricorn: str) -> dict[str, str]:
    def run(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    def pip_version(name: str) -> str:
        try:
            from importlib.metadata import version
            return version(name)
        except Exception:  # noqa: BLE001
            return "?"

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    git = run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"])
    dirty = run(["git", "-C", str(HERE.parent), "status", "--porcelain", "--untracked-files=no"])
    return {
        "machine": f"{os.cpu_count()} CPUs, {cpu}, {platform.release()}",
        "python": platform.python_version(),
        "ferricorn": f"{git}{' (dirty tree)' if dirty else ''}",
        "granian": pip_version("granian"),
        "gunicorn": pip_version("gunicorn"),
        "gevent": pip_version("gevent"),
        "uvicorn": f"{pip_version('uvicorn')} (uvloop {pip_version('uvloop')}, "
                   f"httptools {pip_version('httptools')})",
        "flask": pip_version("flask"),
        "wrk": (run(["wrk", "-v"]).splitlines() or ["?"])[0],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ferricorn", required=True, help="the ferricorn command (release wheel installed in a venv)")
    ap.add_argument("--baseline", action="append", default=[], metavar="[LABEL=]COMMAND",
                    help="another ferricorn command (say, a release wheel of main) run beside "
                    "--ferricorn in every ferricorn configuration, for before/after figures; "
                    "repeatable, LABEL names it in the table (default: baseline)")
    ap.add_argument("--hello-rs", help="path to the Rust-only hello binary")
    ap.add_argument("--ws-load", help="path to the benches/ws-load binary (for ws-echo)")
    ap.add_argument("--quick", action="store_true", help="hello only, one round, 3 s runs")
    ap.add_argument("--apps", help="comma-separated subset of: " + ",".join(a.name for a in APPS))
    ap.add_argument("--servers", help="comma-separated substrings; keep configs whose name matches one")
    ap.add_argument("--rounds", type=int, help="rounds per app (default: 3 for hello, 2 for the others)")
    ap.add_argument("--duration", type=float, help="seconds per timed run (default: 5 hello, 3 others)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per server per round")
    ap.add_argument("--conns", default="64,256", help="connection counts (default 64,256)")
    ap.add_argument("--out", default=str(HERE.parent / "target" / "bench"),
                    help="directory for logs, results.json and results.md")
    args = ap.parse_args()

    for tool in ("wrk", "granian", "gunicorn", "uvicorn"):
        if not shutil.which(tool):
            print(f"bench.py: {tool} not found on PATH (benches/run.sh installs it)", file=sys.stderr)
            return 2

    global WS_LOAD
    WS_LOAD = os.path.abspath(args.ws_load) if args.ws_load else None
    apps = [a for a in APPS if WS_LOAD or not a.websocket]
    if args.quick:
        apps = [App("hello", "hello", None, rounds=1, duration=3.0)]
    if args.apps:
        wanted = args.apps.split(",")
        apps = [a for a in apps if a.name in wanted]
    for a in apps:
        if args.rounds:
            a.rounds = args.rounds
        if args.duration:
            a.duration = args.duration
    conns_list = [int(c) for c in args.conns.split(",")]
    configs = servers(os.path.abspath(args.ferricorn),
                      os.path.abspath(args.hello_rs) if args.hello_rs else None,
                      {(label or "baseline"): os.path.abspath(command) for label, _, command in
                       (b.rpartition("=") for b in args.baseline)} if args.baseline else None)
    if args.servers:
        keys = args.servers.split(",")
        configs = [s for s in configs if any(k in s.name for k in keys)]

    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    atexit.register(kill_all)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))

    info = versions(args.ferricorn)
    est = sum(a.rounds * sum(1 for s in configs if runs_on(s, a))
              * (args.warmup + len(conns_list) * (a.duration + 0.4)) for a in apps)
    print(f"# bench: {', '.join(a.name for a in apps)}; {len(configs)} configs; "
          f"about {est / 60:.1f} min of load", file=sys.stderr)

    results: dict[str, list[Running]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="ferricorn-bench-"))
    try:
        for app in apps:
            runs = run_app(app, [s for s in configs if runs_on(s, app)],
                           conns_list, args.warmup, tmp, out / "logs")
            results[app.name] = runs
    finally:
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)

    header = ["## Results", "",
              f"Medians of interleaved rounds; `-w {WORKERS}`; wrk on loopback, 2 threads, "
              f"{args.warmup:g} s warm-up per server per round.", ""]
    header += [f"- {k}: {v}" for k, v in info.items()]
    header.append("- runs: " + "; ".join(f"{a.name}: {a.rounds} × {a.duration:g} s" for a in apps))
    md = "\n".join(header) + "\n" + report(results, conns_list) + "\n"
    print(md)
    (out / "results.md").write_text(md)
    raw = {"info": info, "results": {
        app: [{"server": r.server.name, "argv": r.server.argv, "failed": r.failed, "idle_rss": r.idle_rss,
               "loaded_rss": r.loaded_rss, "samples": r.samples} for r in runs]
        for app, runs in results.items()}}
    (out / "results.json").write_text(json.dumps(raw, indent=1))
    print(f"# wrote {out / 'results.md'} and results.json", file=sys.stderr)
    return 0


def runs_on(server: Server, app: App) -> bool:
    return server.interface == app.interface and (not server.only or app.name in server.only)


def run_app(app: App, configs: list[Server], conns_list: list[int], warmup: float,
            tmp: Path, logdir: Path) -> list[Running]:
    script = lua_script(app, tmp)
    runs = [start(s, app, logdir) for s in configs]
    try:
        for r in runs:
            if wait_ready(r):
                wait_workers(r)
        time.sleep(1.0)  # let start-up settle before the idle reading
        for r in runs:
            if not r.failed:
                r.idle_rss = rss_per_worker(r.proc.pid)
        for rnd in range(app.rounds):
            for r in runs:
                if r.failed:
                    continue
                if r.proc.poll() is not None:
                    r.failed = f"died (exit {r.proc.returncode}) during round {rnd + 1} (log: {r.log})"
                    continue
                try:
                    load(r.port, app, script, conns_list[0], warmup)
                    for conns in conns_list:
                        res = measure(r, app, script, conns, app.duration)
                        r.samples.setdefault(conns, []).append(res)
                        print(f"{app.name} r{rnd + 1} {r.server.name:<20} c={conns:<4} "
                              f"{res['rps']:>9,.0f} req/s  p99 {res['p99'] / 1000:7.2f} ms  "
                              f"cpu {res['cpu_us']:5.0f} µs/req  non2xx {res['non2xx']} err {res['errors']}",
                              file=sys.stderr, flush=True)
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    r.failed = f"wrk: {error}"
                    continue
                r.loaded_rss = max(r.loaded_rss, rss_per_worker(r.proc.pid))
    finally:
        for r in runs:
            stop(r.proc)
            if r.proc in RUNNING:
                RUNNING.remove(r.proc)
    return runs


if __name__ == "__main__":
    sys.exit(main())
