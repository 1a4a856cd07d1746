"""The process model: concurrency across workers, signals, worker
replacement, load failures, pid file, unix sockets, the access log."""
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from harness import APPS_DIR, parse_response, read_until_closed, run_ferricorn


def get_pid(server, timeout=5):
    status, _, body = server.get("/pid", timeout=timeout)
    assert status == 200
    return int(body)


def in_thread(func, *args):
    """Runs func(*args) in a thread; returns (thread, result dict)."""
    result = {}

    def target():
        try:
            result["value"] = func(*args)
        except BaseException as error:  # reported by the test
            result["error"] = error
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def test_two_workers_serve_concurrently(wsgi_w2):
    """-w 2, app sleeping 1 s: two simultaneous requests finish in < 1.8 s
    in total, served by two different worker pids."""
    started = time.monotonic()
    jobs = [in_thread(wsgi_w2.get, "/sleep?s=1") for _ in range(2)]
    for thread, _ in jobs:
        thread.join(10)
    elapsed = time.monotonic() - started
    results = [result for _, result in jobs]
    assert all("value" in r for r in results), results
    assert [r["value"][0] for r in results] == [200, 200]
    pids = {int(r["value"][2]) for r in results}
    assert len(pids) == 2, "both requests served by %s" % pids
    assert pids <= set(wsgi_w2.booted_pids())
    assert elapsed < 1.8, "two 1 s requests took %.2fs" % elapsed


def test_term_finishes_in_flight_request(spawn):
    """TERM with a 2 s request in flight: the request completes with 200,
    the master exits 0, and logs `Handling signal: term` and
    `Shutting down: Master`."""
    server = spawn.start("wsgiapp:application")
    tag = uuid.uuid4().hex
    start = server.mark()
    thread, result = in_thread(server.get, "/sleep?s=2&tag=" + tag)
    server.stderr.wait_for("sleep-start " + tag, start=start)
    server.signal(signal.SIGTERM)
    thread.join(10)
    assert result.get("value", (None,))[0] == 200, result
    assert server.wait(timeout=10) == 0
    log = server.log()
    assert "Handling signal: term" in log
    assert "Shutting down: Master" in log


@pytest.mark.parametrize("kind", ["sync", "gthread", "async"])
def test_term_answers_requests_whose_heads_arrived(spawn, kind):
    """-w 1: while the worker is inside a 2 s request, a second client
    finishes its request head and a third stays silent; then TERM. Both
    requests are answered 200 (the second head was in before the stop:
    dropping it would lose a request the client already sent), the silent
    connection is closed, and the master exits 0 well before
    `--graceful-timeout` (20 s)."""
    server = spawn.start("wsgiapp:application",
                         args=["-k", kind, "--graceful-timeout", "20"])
    late = server.connection()
    late.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n")
    silent = server.connection()
    tag = uuid.uuid4().hex
    start = server.mark()
    thread, result = in_thread(server.get, "/sleep?s=2&tag=" + tag)
    server.stderr.wait_for("sleep-start " + tag, start=start)
    late.sendall(b"Connection: close\r\n\r\n")
    stopped = time.monotonic()
    server.signal(signal.SIGTERM)
    thread.join(15)
    assert result.get("value", (None,))[0] == 200, result
    reply = read_until_closed(late, timeout=15)
    assert reply.data, "the request whose head arrived was dropped: %r" % reply
    assert parse_response(reply.data).status == 200, reply
    assert read_until_closed(silent, timeout=15).data == b""
    assert server.wait(timeout=15) == 0
    assert time.monotonic() - stopped < 10, "the stop waited for the silent connection"
    late.close()
    silent.close()


def test_int_exits_quickly(spawn):
    """INT stops the master with exit code 0 within 3 s."""
    server = spawn.start("wsgiapp:application")
    started = time.monotonic()
    server.signal(signal.SIGINT)
    assert server.wait(timeout=10) == 0
    assert time.monotonic() - started < 3
    assert "Handling signal: int" in server.log()


def test_killed_worker_is_replaced(spawn):
    """SIGKILL to the worker: a new `Booting worker` appears, and the server
    answers from the new pid."""
    server = spawn.start("wsgiapp:application")
    old = get_pid(server)
    start = server.mark()
    os.kill(old, signal.SIGKILL)
    booted = server.stderr.wait_for(r"Booting worker with pid: (\d+)", timeout=10, start=start)
    new = int(booted[0].group(1))
    assert new != old
    server.wait_until_serving(10)
    assert get_pid(server) == new


def has_exited(pid):
    """True once `pid` is gone or a zombie (orphans may never be reaped here)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_workers_exit_when_master_is_killed(spawn):
    """SIGKILL to the master: its worker notices it is orphaned and exits
    within 6 s (gunicorn: `Parent changed, shutting down`, checked every
    timeout/2 = 2 s here), instead of serving on without a master."""
    server = spawn.start("wsgiapp:application", args=["--timeout", "4"])
    worker = get_pid(server)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=5)
    deadline = time.monotonic() + 6
    while not has_exited(worker):
        if time.monotonic() > deadline:
            raise AssertionError("worker %d still running 6 s after its master died" % worker)
        time.sleep(0.1)


def test_worker_timeout_kills_and_replaces(spawn):
    """--timeout 3, app spinning on the CPU for 60 s: `WORKER TIMEOUT
    (pid:N)` is logged, a new worker boots and answers the next request."""
    server = spawn.start("wsgiapp:application", args=["--timeout", "3"], ready_path="/pid")
    old = get_pid(server)
    start = server.mark()
    with server.connection(timeout=20) as sock:
        sock.sendall(b"GET /cpu HTTP/1.1\r\nHost: x\r\n\r\n")
        server.stderr.wait_for(r"\[CRITICAL\] WORKER TIMEOUT \(pid:%d\)" % old,
                               timeout=15, start=start)
        booted = server.stderr.wait_for(r"Booting worker with pid: (\d+)", timeout=10, start=start)
    new = int(booted[0].group(1))
    assert new != old
    server.wait_until_serving(10)
    assert get_pid(server) == new


def run_until_exit(ferricorn_bin, app):
    proc = run_ferricorn(ferricorn_bin, ["-b", "127.0.0.1:0", "--chdir", str(APPS_DIR), app])
    return proc.returncode, proc.stderr


def test_missing_module_exits_4(ferricorn_bin):
    """An app module that does not exist: the master exits 4 and the log
    names the module and the reason."""
    code, log = run_until_exit(ferricorn_bin, "nosuchmodule:app")
    assert code == 4, log
    assert "nosuchmodule" in log
    assert "Reason: App failed to load." in log


def test_import_error_exits_4_with_traceback(ferricorn_bin):
    """A module whose import raises: exit 4, with its traceback in the log."""
    code, log = run_until_exit(ferricorn_bin, "badimport:app")
    assert code == 4, log
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: import-time failure marker 7f3a" in log


def test_pid_file(spawn, tmp_path):
    """--pid FILE holds the master pid while running and is removed after TERM."""
    pidfile = tmp_path / "ferricorn.pid"
    server = spawn.start("wsgiapp:application", args=["--pid", str(pidfile)])
    assert pidfile.read_text().strip() == str(server.proc.pid)
    assert server.stop() == 0
    assert not pidfile.exists()


def test_unix_socket_bind(spawn):
    """-b unix:PATH serves requests (curl --unix-socket), and the socket
    file is removed after TERM."""
    path = os.path.join(tempfile.gettempdir(), "ferricorn-test-%s.sock" % uuid.uuid4().hex[:8])
    server = spawn.start("wsgiapp:application", bind="unix:" + path)
    assert server.stderr.wait_for("Listening at: unix:" + re.escape(path))
    curl = subprocess.run(["curl", "-sS", "--max-time", "5", "--unix-socket", path,
                           "http://localhost/length"], capture_output=True, timeout=10)
    assert curl.returncode == 0, curl.stderr
    assert curl.stdout == b"exactly 23 bytes long.\n"
    assert server.stop() == 0
    assert not os.path.exists(path)


def test_access_log_default_format(spawn):
    """--access-logfile - prints gunicorn's default format on stdout:
    `127.0.0.1 - - [..] "GET /path?q=1 HTTP/1.1" 200 N "-" "ua"`."""
    server = spawn.start("wsgiapp:application", args=["--access-logfile", "-"])
    status, _, body = server.get("/length?q=1", headers={"User-Agent": "e2e-agent/1.0"})
    assert status == 200
    line = server.stdout.wait_for(r"GET /length\?q=1 ")[0].string
    pattern = (r'127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
               r'"GET /length\?q=1 HTTP/1\.1" 200 %d "-" "e2e-agent/1\.0"' % len(body))
    assert re.fullmatch(pattern, line), line


def test_error_log_line_format(spawn):
    """Error log lines follow gunicorn's `[date] [pid] [LEVEL] message`: the
    master's pid on `Listening at`, each worker's own pid on its boot line."""
    server = spawn.start("wsgiapp:application")
    prefix = r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}\] \[(\d+)\] \[INFO\] "
    master = server.stderr.wait_for(prefix + r"Listening at: http://127\.0\.0\.1:%d \((\d+)\)$"
                                    % server.port)[0]
    assert int(master.group(1)) == int(master.group(2)) == server.proc.pid
    worker = server.stderr.wait_for(prefix + r"Booting worker with pid: (\d+)$")[0]
    assert int(worker.group(1)) == int(worker.group(2)) == get_pid(server)
