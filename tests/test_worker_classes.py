"""Worker classes sync, gthread and async end to end: streaming both ways,
keep-alive and pipelining, the seed experiments (shared/seeds/
001_b51eb184ac9686f3.txt), concurrency, backpressure, header timeout,
Slowloris, --worker-connections, TLS, HTTP/2 (ALPN and h2c), and a short
load with `hey`.

Every wait is bounded; every server listens on loopback and is stopped at
teardown. Measured numbers are printed (see them with `pytest -rP`).
"""
import hashlib
import http.client
import json
import os
import re
import resource
import selectors
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from harness import (Server, parse_response, read_head, read_until_closed,
                     run_ferricorn)

CLASSES = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "4"],
    "async": ["-k", "async"],
}
KEEPALIVE_CLASSES = ("gthread", "async")


def raise_nofile(wanted=8192):
    """Raises this process's soft RLIMIT_NOFILE towards `wanted` (as far as
    the hard limit allows); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def start(spawn, app, kind_args, *extra, workers=1, server_cls=Server):
    """Starts a server of `app` with the class arguments and `extra` flags."""
    server = server_cls(spawn.binary, app, args=["-w", str(workers), *kind_args, *extra],
                        workers=workers)
    spawn.servers.append(server)
    return server.start()


def request_bytes(method, path, headers=(), body=b"", close=True):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    lines += ["%s: %s" % h for h in headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock, timeout=5.0, head_request=False):
    """Reads exactly one Content-Length- or chunked-framed response from a
    connection that stays open; returns (Response, bytes read past it)."""
    deadline = time.monotonic() + timeout
    head, data = read_head(sock, timeout)
    while True:
        try:
            resp = parse_response(head + data, head_request=head_request)
        except AssertionError:  # not complete yet
            resp = None
        if resp is not None:
            assert head_request or resp.header("content-length") is not None \
                or resp.header("transfer-encoding") is not None, "framed by close: %r" % resp
            return resp, resp.rest
        remaining = deadline - time.monotonic()
        assert remaining > 0, "incomplete response within %ss: %r" % (timeout, head + data)
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response: %r" % (head + data)[:600]
        data += chunk


def concurrent_requests(port, raw, count, timeout):
    """Opens `count` connections, writes `raw` (a request ending the
    connection) on each, and reads every reply until the server closes it,
    all from one thread. Returns (replies, seconds from the first connect to
    the last reply). A reply is (bytes, closed, seconds until it ended)."""
    raise_nofile(count * 2 + 256)
    sel = selectors.DefaultSelector()
    started = time.monotonic()
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            sock.sendall(raw)
            sock.setblocking(False)
            socks.append(sock)
        buffers = {sock: [] for sock in socks}
        ended = {}
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        deadline = started + timeout
        while len(ended) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in sel.select(min(remaining, 0.5)):
                sock = key.fileobj
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    buffers[sock].append(chunk)
                else:
                    ended[sock] = time.monotonic() - started
                    sel.unregister(sock)
        elapsed = max(ended.values(), default=time.monotonic() - started)
        replies = [(b"".join(buffers[s]), s in ended, ended.get(s)) for s in socks]
        return replies, elapsed
    finally:
        sel.close()
        for sock in socks:
            sock.close()


def statuses(replies):
    out = []
    for data, closed, _ in replies:
        if not closed or not data.startswith(b"HTTP/1.1 "):
            out.append(None)
        else:
            out.append(parse_response(data).status)
    return out


# -- 1. the basics, parametrised over the three classes ----------------------

@pytest.fixture(scope="module", params=list(CLASSES))
def basic(request, ferricorn_bin):
    server = Server(ferricorn_bin, "workerapp:app",
                    args=["-w", "1", *CLASSES[request.param], "--keep-alive", "1"])
    server.kind = request.param
    try:
        yield server.start()
    finally:
        server.stop()


def test_hello(basic):
    """GET / answers the app's body."""
    status, headers, body = basic.get("/")
    assert (status, body) == (200, b"Hello, world!\n")
    assert headers["Content-Length"] == "14"


def test_post_1mb_echo(basic):
    """A 1 MB POST comes back byte for byte (sha256 compared)."""
    payload = os.urandom(1 << 20)
    status, _, body = basic.request("POST", "/echo", body=payload,
                                    headers={"Content-Type": "application/octet-stream"},
                                    timeout=20)
    assert status == 200
    assert len(body) == len(payload)
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_chunked_upload(basic):
    """A chunked request body reaches the app whole."""
    pieces = [b"a" * 10, b"b" * 5000, os.urandom(70000), b"end"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    raw = request_bytes("POST", "/count", [("Transfer-Encoding", "chunked")], body)
    reply = basic.raw(raw, timeout=10)
    assert reply.closed, reply
    resp = parse_response(reply.data)
    assert resp.status == 200, resp
    got = json.loads(resp.body)
    whole = b"".join(pieces)
    assert got == {"count": len(whole), "sha256": hashlib.sha256(whole).hexdigest()}


def test_streaming_response_arrives_incrementally(basic):
    """A generator that yields, sleeps 0.5 s and yields again: the first
    chunk reaches the client before 0.4 s, the second after the sleep."""
    with basic.connection(timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(request_bytes("GET", "/stream"))
        data = b""
        while b"first\n" not in data:
            assert time.monotonic() - started < 5, data
            chunk = sock.recv(65536)
            assert chunk, "closed before the first chunk: %r" % data
            data += chunk
        first_at = time.monotonic() - started
        rest = read_until_closed(sock, timeout=5)
        done_at = time.monotonic() - started
    print("[%s] first chunk after %.3fs, whole body after %.3fs" % (basic.kind, first_at, done_at))
    assert first_at < 0.4, "first chunk only after %.3fs" % first_at
    assert rest.closed, rest
    resp = parse_response(data + rest.data)
    assert resp.status == 200
    assert resp.body == b"first\nsecond\n"
    assert done_at >= 0.45


def test_head(basic):
    """HEAD answers the GET's headers and no body."""
    reply = basic.raw(request_bytes("HEAD", "/"), timeout=5)
    assert reply.closed, reply
    resp = parse_response(reply.data, head_request=True)
    assert resp.status == 200
    assert resp.header("content-length") in (None, "14")
    assert resp.rest == b"", "bytes after a HEAD response: %r" % resp.rest


def test_keep_alive(basic):
    """gthread/async reuse one connection for two requests (same socket and
    local port); sync answers Connection: close and the second request
    needs a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", basic.port, timeout=5)
    try:
        conn.request("GET", "/")
        sock1, port1 = conn.sock, conn.sock.getsockname()[1]
        resp1 = conn.getresponse()
        assert resp1.read() == b"Hello, world!\n"
        connection1 = resp1.getheader("Connection", "")
        conn.request("GET", "/pid")
        sock2, port2 = conn.sock, conn.sock.getsockname()[1]
        resp2 = conn.getresponse()
        assert resp2.status == 200
        resp2.read()
    finally:
        conn.close()
    if basic.kind in KEEPALIVE_CLASSES:
        assert connection1.lower() != "close"
        assert sock2 is sock1 and port2 == port1, "a new connection for the second request"
    else:
        assert connection1.lower() == "close"
        assert port2 != port1


def test_pipelining(basic):
    """Two requests written at once: gthread/async answer both in order
    (the first is a slow stream, so order is not luck); sync answers the
    first with Connection: close and closes."""
    raw = request_bytes("GET", "/stream", close=False) + request_bytes("GET", "/")
    reply = basic.raw(raw, timeout=5)
    assert reply.closed, reply
    first = parse_response(reply.data)
    assert first.status == 200 and first.body == b"first\nsecond\n", first
    if basic.kind in KEEPALIVE_CLASSES:
        second = parse_response(first.rest)
        assert second.status == 200 and second.body == b"Hello, world!\n", second
        assert second.rest == b""
    else:
        assert first.header("connection").lower() == "close"
        assert first.rest == b"", "sync sent more after Connection: close: %r" % first.rest


def test_idle_keep_alive_closed(basic):
    """With --keep-alive 1, an idle kept-alive connection is closed by the
    server (recv returns b'') within about 3 s; gthread/async keep it open
    meanwhile (it is not closed right after the response)."""
    with basic.connection(timeout=5) as sock:
        sock.sendall(request_bytes("GET", "/", close=False))
        resp, extra = read_response(sock)
        assert resp.status == 200 and extra == b""
        answered = time.monotonic()
        reply = read_until_closed(sock, timeout=3.5)
        closed_after = time.monotonic() - answered
    print("[%s] idle connection closed %.3fs after the response" % (basic.kind, closed_after))
    assert reply.closed and reply.data == b"", reply
    assert closed_after < 3.0
    if basic.kind in KEEPALIVE_CLASSES:
        assert (resp.header("connection") or "").lower() != "close"
        assert closed_after > 0.5, "closed %.3fs after the response, not kept alive" % closed_after


@pytest.mark.parametrize("seconds", ["0.8", "1.5"])
def test_keep_alive_time_runs_from_the_response_not_the_request(basic, seconds):
    """With --keep-alive 1, a request that runs 0.8 s (it ends before the
    first keep-alive second is up) or 1.5 s (after it) keeps its connection
    for about a second after its response, not until a second after the
    request began, and the connection serves a second request sent right
    after the first response."""
    if basic.kind not in KEEPALIVE_CLASSES:
        pytest.skip("sync does not keep connections alive")
    with basic.connection(timeout=5) as sock:
        for _ in range(2):
            sock.sendall(request_bytes("GET", "/sleep?s=" + seconds, close=False))
            resp, extra = read_response(sock)
            assert resp.status == 200 and extra == b"", resp
        answered = time.monotonic()
        reply = read_until_closed(sock, timeout=3.5)
        closed_after = time.monotonic() - answered
    assert reply.closed and reply.data == b"", reply
    assert 0.6 < closed_after < 3.0, "closed %.3fs after the response" % closed_after


def test_sync_with_threads_becomes_gthread(spawn):
    """`--threads 2` with the default class (sync) runs gthread, as in
    gunicorn: the log says so, connections are kept alive, and two
    concurrent sleeps of 1 s on one worker overlap."""
    server = start(spawn, "workerapp:app", [], "--threads", "2")
    assert "Using worker: gthread" in server.log(), server.log()
    _, headers, _ = server.get("/")
    assert (headers.get("Connection") or "").lower() != "close"
    replies, elapsed = concurrent_requests(server.port, request_bytes("GET", "/sleep?s=1"), 2, 10)
    assert statuses(replies) == [200, 200], replies
    assert elapsed < 1.8, "two 1 s sleeps took %.2fs on --threads 2" % elapsed


# -- 2. the seed experiments -------------------------------------------------

SEED_CLASSES = {
    "sync": (["-k", "sync"], 3.5, 5.5),
    "gthread": (["-k", "gthread", "--threads", "2"], 1.9, 3.0),
    "async": (["-k", "async"], 1.9, 3.0),
}


@pytest.mark.parametrize("kind", list(SEED_CLASSES))
def test_seed_io_task_two_concurrent(spawn, kind):
    """-w 1, two concurrent GET /io_task (Flask, time.sleep(2)): about 4 s on
    sync, about 2 s on gthread --threads 2 and on async."""
    args, low, high = SEED_CLASSES[kind]
    server = start(spawn, "seedapp:app", args)
    replies, elapsed = concurrent_requests(server.port, request_bytes("GET", "/io_task"), 2, 10)
    print("[%s] two concurrent io_task: %.2fs" % (kind, elapsed))
    assert statuses(replies) == [200, 200], replies
    assert all(parse_response(d).body == b"io_task has completed.\n" for d, _, _ in replies)
    assert low <= elapsed <= high, "%s: two io_task took %.2fs, expected %.1f-%.1f" % (
        kind, elapsed, low, high)


def siege_json(output):
    match = re.search(r"\{.*\}", output, re.S)
    assert match, "no JSON summary in siege's output:\n" + output
    return json.loads(match.group(0))


@pytest.mark.parametrize("kind", list(SEED_CLASSES))
def test_seed_io_task_siege(spawn, kind, tmp_path):
    """`siege -c 2 -r 1 .../io_task`: elapsed about 4 s on sync, about 2 s on
    gthread --threads 2 and async; both transactions succeed."""
    siege = shutil.which("siege")
    if not siege:
        pytest.skip("siege is not installed (apt-get install siege; .ci/run installs it)")
    args, low, high = SEED_CLASSES[kind]
    server = start(spawn, "seedapp:app", args)
    env = dict(os.environ, HOME=str(tmp_path))  # siege's default config, not the user's
    run = subprocess.run([siege, "-c", "2", "-r", "1",
                          "http://127.0.0.1:%d/io_task" % server.port],
                         capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path)
    summary = siege_json(run.stdout + run.stderr)
    print("[%s] siege -c 2 -r 1 io_task: %s" % (kind, json.dumps(summary)))
    assert summary["successful_transactions"] == 2, summary
    assert summary["failed_transactions"] == 0, summary
    assert low <= summary["elapsed_time"] <= high, summary


def test_seed_cpu_task_sync_worker_timeout(spawn):
    """sync --timeout 3, two concurrent /cpu_task (about 8 s of CPU each):
    the master logs WORKER TIMEOUT for the worker and boots a new one."""
    server = start(spawn, "seedapp:app", ["-k", "sync"], "--timeout", "3")
    old_pid = server.booted_pids()[0]
    mark = server.mark()
    socks = []
    try:
        started = time.monotonic()
        for _ in range(2):
            sock = server.connection(timeout=15)
            sock.sendall(request_bytes("GET", "/cpu_task"))
            socks.append(sock)
        server.stderr.wait_for(r"WORKER TIMEOUT \(pid:%d\)" % old_pid, timeout=10, start=mark)
        timed_out_after = time.monotonic() - started
        booted = server.stderr.wait_for(r"Booting worker with pid: (\d+)", timeout=10, start=mark)
        print("[sync] cpu_task: WORKER TIMEOUT after %.2fs" % timed_out_after)
        assert int(booted[0].group(1)) != old_pid
        # The first request's connection ends without the app's answer.
        reply = read_until_closed(socks[0], timeout=5)
        assert b"CPU task has finished" not in reply.data, reply
    finally:
        for sock in socks:
            sock.close()


def test_seed_cpu_task_gthread_completes(spawn):
    """gthread --threads 2 --timeout 3, two concurrent /cpu_task (about 8 s
    each): both complete with 200 and no WORKER TIMEOUT is logged (timeout
    means a stalled event loop, not a long request)."""
    server = start(spawn, "seedapp:app", ["-k", "gthread", "--threads", "2"], "--timeout", "3")
    mark = server.mark()
    replies, elapsed = concurrent_requests(server.port, request_bytes("GET", "/cpu_task"), 2, 25)
    print("[gthread] two concurrent cpu_task: %.2fs" % elapsed)
    assert statuses(replies) == [200, 200], replies
    assert all(parse_response(d).body == b"CPU task has finished.\n" for d, _, _ in replies)
    assert "WORKER TIMEOUT" not in server.log(mark)
    assert len(server.booted_pids()) == 1, server.log()


# -- 3. async concurrency ----------------------------------------------------

def test_async_200_concurrent_sleeps(spawn):
    """-w 1 -k async: 200 concurrent requests to a sleep(2) view all succeed
    within 2.5 s."""
    server = start(spawn, "workerapp:app", ["-k", "async"])
    replies, elapsed = concurrent_requests(server.port, request_bytes("GET", "/sleep?s=2"), 200, 10)
    codes = statuses(replies)
    print("[async] 200 concurrent sleep(2): %.2fs, %d ok" % (elapsed, codes.count(200)))
    assert codes.count(200) == 200, "%d of 200 succeeded: %r" % (
        codes.count(200), [r for r, c in zip(replies, codes) if c != 200][:3])
    assert elapsed < 2.5, "200 concurrent sleep(2) took %.2fs" % elapsed


# -- 4. request body backpressure --------------------------------------------

def vm_rss_mb(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS for pid %d" % pid)


@pytest.mark.parametrize("kind", ["gthread", "async"])
def test_upload_backpressure(spawn, kind):
    """A 300 MB upload from a generator to an app reading 64 KB at a time:
    the worker's RSS stays under 150 MB while it is in flight, and the app
    counts every byte."""
    server = start(spawn, "workerapp:app", CLASSES[kind])
    worker = server.booted_pids()[0]
    assert server.get("/pid")[2] == str(worker).encode()
    block = os.urandom(1 << 20)
    blocks = 300
    total = len(block) * blocks
    expected_sha = hashlib.sha256()
    for _ in range(blocks):
        expected_sha.update(block)
    result = {}

    def upload():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        try:
            conn.request("POST", "/count", body=(block for _ in range(blocks)),
                         headers={"Content-Length": str(total)})
            resp = conn.getresponse()
            result["status"], result["body"] = resp.status, resp.read()
        except Exception as error:  # reported by the assertions below
            result["error"] = error
        finally:
            conn.close()

    baseline = vm_rss_mb(worker)
    thread = threading.Thread(target=upload, daemon=True)
    started = time.monotonic()
    thread.start()
    samples = []
    while thread.is_alive() and time.monotonic() - started < 30:
        samples.append(vm_rss_mb(worker))
        time.sleep(0.02)
    thread.join(5)
    elapsed = time.monotonic() - started
    print("[%s] 300 MB upload in %.2fs; worker RSS baseline %.1f MB, peak %.1f MB (%d samples)"
          % (kind, elapsed, baseline, max(samples, default=0), len(samples)))
    assert not thread.is_alive(), "the upload did not finish within 30 s"
    assert "error" not in result, result
    assert result["status"] == 200, result
    assert json.loads(result["body"]) == {"count": total, "sha256": expected_sha.hexdigest()}
    assert len(samples) >= 5, "too few RSS samples while the upload was in flight"
    assert max(samples) < 150, "worker RSS reached %.1f MB" % max(samples)


# -- 5. an app that never reads the body -------------------------------------

@pytest.mark.parametrize("kind", list(CLASSES))
def test_unread_body_does_not_wedge_connection(spawn, kind):
    """POST 100 KB to a view that ignores wsgi.input: the response is whole,
    and then either a second request on the same connection works, or the
    server closes the connection cleanly (no hang, no garbled reply)."""
    server = start(spawn, "workerapp:app", CLASSES[kind])
    body = os.urandom(100 * 1024)
    with server.connection(timeout=5) as sock:
        sock.sendall(request_bytes("POST", "/ignore", [("Content-Length", len(body))], body,
                                   close=False))
        resp, extra = read_response(sock)
        assert resp.status == 200 and resp.body == b"ignored\n", resp
        kept = (resp.header("connection") or "").lower() != "close"
        if kept:
            assert extra == b""
            sock.sendall(request_bytes("GET", "/"))
            reply = read_until_closed(sock, timeout=5)
            assert reply.closed, "second request: no complete answer (hang): %r" % reply
            second = parse_response(reply.data)
            assert second.status == 200 and second.body == b"Hello, world!\n", second
            assert second.rest == b""
        else:
            reply = read_until_closed(sock, timeout=5)
            assert reply.closed, "Connection: close but the connection stayed open: %r" % reply
            assert extra + reply.data == b"", "bytes after the response: %r" % (extra + reply.data)
    print("[%s] unread 100 KB body: connection %s" % (kind, "kept alive" if kept else "closed"))


# -- 6. header timeout -------------------------------------------------------

@pytest.mark.parametrize("kind", list(CLASSES))
def test_header_timeout_408(spawn, kind):
    """--header-timeout 1: half a request head, then nothing: 408 and the
    connection closed, within about 3 s."""
    server = start(spawn, "workerapp:app", CLASSES[kind], "--header-timeout", "1")
    with server.connection(timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        reply = read_until_closed(sock, timeout=4)
        elapsed = time.monotonic() - started
    print("[%s] 408 and close after %.2fs" % (kind, elapsed))
    assert reply.closed, "not closed within 4 s: %r" % reply
    assert reply.data.startswith(b"HTTP/1.1 408"), reply
    assert 0.8 <= elapsed <= 3.0, elapsed


# -- 7. Slowloris ------------------------------------------------------------

SLOW_CONNECTIONS = 300
ORDINARY_REQUESTS = 200


class Slowloris:
    """SLOW_CONNECTIONS connections, each sending a request line and then
    one header line every `interval` seconds, from one thread."""

    def __init__(self, port, count, interval=2.0):
        self.port, self.count, self.interval = port, count, interval
        self.socks = []
        self.lines_sent = 0
        self.send_errors = 0
        self._stop = threading.Event()
        self._thread = None

    def open(self):
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.setblocking(False)
            self.socks.append(sock)
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self):
        n = 0
        while not self._stop.wait(self.interval):
            n += 1
            for sock in self.socks:
                try:
                    sock.send(b"X-Trickle-%d: %d\r\n" % (n, n))
                    self.lines_sent += 1
                except OSError:
                    self.send_errors += 1

    def still_open(self):
        """How many connections the server has not closed (nor answered)."""
        count = 0
        for sock in self.socks:
            try:
                sock.recv(1024)  # b'' (closed) or an answer: not open any more
            except BlockingIOError:
                count += 1
            except OSError:
                pass
        return count

    def close(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        for sock in self.socks:
            sock.close()


@pytest.mark.parametrize("kind", list(CLASSES))
def test_slowloris(spawn, kind):
    """300 connections trickling a header line every 2 s while a client sends
    200 ordinary requests one after another (paced over two trickle
    rounds): >= 99 % succeed, p99 latency < 200 ms; all within 20 s."""
    raise_nofile(SLOW_CONNECTIONS * 2 + 256)
    test_started = time.monotonic()
    server = start(spawn, "workerapp:app", CLASSES[kind])
    slow = Slowloris(server.port, SLOW_CONNECTIONS)
    latencies, failures = [], []
    try:
        slow.open()
        for i in range(ORDINARY_REQUESTS):
            began = time.monotonic()
            try:
                status, _, body = server.get("/", timeout=2)
                if status == 200 and body == b"Hello, world!\n":
                    latencies.append(time.monotonic() - began)
                else:
                    failures.append((i, status, body[:100]))
            except (OSError, http.client.HTTPException) as error:
                failures.append((i, repr(error)))
            time.sleep(max(0.0, 0.02 - (time.monotonic() - began)))  # pacing, not readiness
        open_at_end = slow.still_open()
        lines_sent = slow.lines_sent
    finally:
        slow.close()
    total = time.monotonic() - test_started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("inf")
    print("[%s] slowloris: %d/%d ok, p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d/%d slow "
          "connections still open, %d trickle lines sent; %.1fs in all"
          % (kind, len(latencies), ORDINARY_REQUESTS, latencies[len(latencies) // 2] * 1000
             if latencies else -1, p99 * 1000, (latencies[-1] if latencies else -1) * 1000,
             open_at_end, SLOW_CONNECTIONS, lines_sent, total))
    # The attack really was in place while the ordinary requests ran.
    assert lines_sent >= SLOW_CONNECTIONS, "no trickle round completed"
    assert open_at_end >= SLOW_CONNECTIONS * 0.95, (
        "only %d slow connections still open: the attack was not sustained" % open_at_end)
    assert len(latencies) >= ORDINARY_REQUESTS * 0.99, failures[:5]
    assert p99 < 0.200, "p99 %.1f ms" % (p99 * 1000)
    assert total < 20, "took %.1fs" % total


# -- 8. --worker-connections -------------------------------------------------

def test_worker_connections_cap_pauses_accepting(spawn):
    """gthread --worker-connections 5: 10 concurrent keep-alive connections
    each asking for a 1 s sleep. At most 5 are served in the first round
    (the cap holds), and all 10 are eventually served (accepting pauses at
    the cap rather than refusing)."""
    server = start(spawn, "workerapp:app", ["-k", "gthread", "--threads", "10"],
                   "--worker-connections", "5", "--keep-alive", "2")
    sel = selectors.DefaultSelector()
    socks, buffers, done = [], {}, {}
    try:
        started = time.monotonic()
        for _ in range(10):
            sock = server.connection(timeout=5)
            sock.sendall(request_bytes("GET", "/sleep?s=1", close=False))
            sock.setblocking(False)
            socks.append(sock)
            buffers[sock] = b""
            sel.register(sock, selectors.EVENT_READ)
        deadline = started + 15
        while len(done) < 10 and time.monotonic() < deadline:
            for key, _ in sel.select(0.2):
                sock = key.fileobj
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    done[sock] = (time.monotonic() - started, "closed", buffers[sock])
                    sel.unregister(sock)
                    continue
                buffers[sock] += chunk
                if b"slept\n" in buffers[sock]:
                    done[sock] = (time.monotonic() - started, "answered", buffers[sock])
                    sel.unregister(sock)  # but keep the connection open
    finally:
        sel.close()
        for sock in socks:
            sock.close()
    times = sorted(t for t, how, _ in done.values() if how == "answered")
    print("[gthread] worker-connections 5, 10 clients answered at: %s"
          % ", ".join("%.2f" % t for t in times))
    bad = [(how, data[:200]) for _, how, data in done.values() if how != "answered"]
    assert not bad, "connections ended without an answer: %r" % bad
    assert len(times) == 10, "only %d of 10 answered within 15 s" % len(times)
    for _, _, data in done.values():
        assert parse_response(data).status == 200
    assert sum(1 for t in times if t < 1.8) <= 5, "more than 5 served at once: %r" % times


# -- 9. TLS ------------------------------------------------------------------

def openssl(*args, cwd):
    run = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, "openssl %s failed:\n%s" % (" ".join(args), run.stderr)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A self-signed server cert, and a CA with a server and a client cert."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("certs")
    san = "subjectAltName=IP:127.0.0.1,DNS:localhost"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "self.key",
            "-out", "self.pem", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", san, cwd=d)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=ferricorn test CA", cwd=d)
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
                "-out", name + ".csr", "-subj", "/CN=%s" % name, cwd=d)
        ext = d / (name + ".ext")
        ext.write_text(san + "\n" if name == "server" else "extendedKeyUsage=clientAuth\n")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", str(ext),
                cwd=d)
    return d


class TlsServer(Server):
    """A server probed for readiness over TLS (certificate not verified;
    with `client_cert`, presenting it)."""
    client_cert = None

    def request(self, method, path, body=None, headers=None, timeout=5):
        self.last_used = time.monotonic()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            context.load_cert_chain(*self.client_cert)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=context)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()


def curl(*args, timeout=20):
    """Runs curl; returns (exit code, stdout bytes, stderr text)."""
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    run = subprocess.run(["curl", "-sS", "--no-progress-meter", "--max-time", str(timeout - 2), *args],
                         capture_output=True, timeout=timeout)
    return run.returncode, run.stdout, run.stderr.decode("utf-8", "replace")


def curl_environ(url, *args):
    """GET /environ with curl: (the app's JSON, curl's %{http_version})."""
    code, out, err = curl(*args, "-w", "\n%{http_version}", url + "/environ")
    assert code == 0, "curl %s failed (%d): %s" % (" ".join(args), code, err)
    body, _, version = out.rpartition(b"\n")
    return json.loads(body), version.decode()


def tls_server(spawn, certs, kind, *extra, cert="self"):
    args = ["--certfile", str(certs / (cert + ".pem")), "--keyfile", str(certs / (cert + ".key"))]
    return start(spawn, "workerapp:app", CLASSES[kind], *args, *extra, server_cls=TlsServer)


@pytest.mark.parametrize("kind", list(CLASSES))
def test_tls_url_scheme_https(spawn, certs, kind):
    """--certfile/--keyfile: curl -sk https://... is answered, with
    wsgi.url_scheme https; HTTP/1.1 when only h1 is offered (the default)."""
    server = tls_server(spawn, certs, kind)
    url = "https://127.0.0.1:%d" % server.port
    environ, version = curl_environ(url, "-k")
    assert environ["wsgi.url_scheme"] == "https"
    assert version == "1.1"
    environ, version = curl_environ(url, "-k", "--http2")
    assert version == "1.1", "HTTP/%s although only h1 is offered" % version
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"


@pytest.mark.parametrize("kind", list(CLASSES))
def test_tls_alpn_h2(spawn, certs, kind):
    """--http-protocols h1,h2: curl --http2 negotiates HTTP/2 by ALPN and the
    app sees SERVER_PROTOCOL HTTP/2 and https; plain HTTP/1.1 still works."""
    server = tls_server(spawn, certs, kind, "--http-protocols", "h1,h2")
    url = "https://127.0.0.1:%d" % server.port
    environ, version = curl_environ(url, "-k", "--http2")
    assert version == "2"
    assert environ["SERVER_PROTOCOL"] == "HTTP/2"
    assert environ["wsgi.url_scheme"] == "https"
    environ, version = curl_environ(url, "-k", "--http1.1")
    assert version == "1.1" and environ["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_mutual_tls(spawn, certs):
    """--ca-certs ca.pem --cert-reqs 2: a client without a certificate is
    refused; one with a certificate signed by the CA is served."""
    server = TlsServer(spawn.binary, "workerapp:app",
                       args=["-k", "gthread", "--certfile", str(certs / "server.pem"),
                             "--keyfile", str(certs / "server.key"),
                             "--ca-certs", str(certs / "ca.pem"), "--cert-reqs", "2"])
    server.client_cert = (str(certs / "client.pem"), str(certs / "client.key"))
    spawn.servers.append(server)
    server.start()
    url = "https://127.0.0.1:%d/environ" % server.port
    code, out, err = curl("--cacert", str(certs / "ca.pem"), url)
    assert code != 0 and not out, "served without a client certificate: %r" % out
    code, out, err = curl("--cacert", str(certs / "ca.pem"), "--cert", str(certs / "client.pem"),
                          "--key", str(certs / "client.key"), url)
    assert code == 0, err
    assert json.loads(out)["wsgi.url_scheme"] == "https"
    # A certificate from another issuer (self-signed) is refused too.
    code, out, err = curl("--cacert", str(certs / "ca.pem"), "--cert", str(certs / "self.pem"),
                          "--key", str(certs / "self.key"), url)
    assert code != 0 and not out, "served a client certificate from an unknown CA"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_tls_unsupported_cipher_exits_2(ferricorn_bin, certs):
    """--ciphers RC4-MD5 (rustls cannot do it): exit 2 naming --ciphers,
    nothing bound."""
    run = run_ferricorn(ferricorn_bin, ["-b", "127.0.0.1:%d" % free_port(),
                                        "--certfile", str(certs / "self.pem"),
                                        "--keyfile", str(certs / "self.key"),
                                        "--ciphers", "RC4-MD5", "workerapp:app"])
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "--ciphers" in run.stderr, run.stderr
    assert "Listening at" not in run.stderr


def test_tls_missing_certfile_exits_2(ferricorn_bin, certs, tmp_path):
    """A missing --certfile: exit 2 before anything is bound, naming it."""
    missing = tmp_path / "nope.pem"
    port = free_port()
    run = run_ferricorn(ferricorn_bin, ["-b", "127.0.0.1:%d" % port,
                                        "--certfile", str(missing),
                                        "--keyfile", str(certs / "self.key"), "workerapp:app"])
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "certfile" in run.stderr and str(missing) in run.stderr, run.stderr
    assert "Listening at" not in run.stderr and "Booting worker" not in run.stderr


# -- 10. h2c (HTTP/2 with prior knowledge) -----------------------------------

@pytest.fixture(scope="module")
def h2c_server(ferricorn_bin):
    server = Server(ferricorn_bin, "workerapp:app",
                    args=["-k", "gthread", "--threads", "20", "--http2-cleartext",
                          "prior-knowledge"])
    try:
        yield server.start()
    finally:
        server.stop()


def test_h2c_prior_knowledge(h2c_server):
    """curl --http2-prior-knowledge gets HTTP/2 (SERVER_PROTOCOL HTTP/2,
    scheme http); an HTTP/1.1 request on the same server still works."""
    url = "http://127.0.0.1:%d" % h2c_server.port
    environ, version = curl_environ(url, "--http2-prior-knowledge")
    assert version == "2"
    assert environ["SERVER_PROTOCOL"] == "HTTP/2"
    assert environ["wsgi.url_scheme"] == "http"
    status, _, body = h2c_server.get("/environ")
    assert status == 200 and json.loads(body)["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_h2c_post_1mb_echo(h2c_server, tmp_path):
    """An HTTP/2 POST of 1 MB comes back byte for byte."""
    payload = os.urandom(1 << 20)
    (tmp_path / "in.bin").write_bytes(payload)
    code, out, err = curl("--http2-prior-knowledge", "--data-binary", "@" + str(tmp_path / "in.bin"),
                          "-H", "Content-Type: application/octet-stream",
                          "-o", str(tmp_path / "out.bin"), "-w", "%{http_code} %{http_version}",
                          "http://127.0.0.1:%d/echo" % h2c_server.port)
    assert code == 0, err
    assert out == b"200 2", out
    got = (tmp_path / "out.bin").read_bytes()
    assert len(got) == len(payload)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()


class H2cClient:
    """A minimal HTTP/2 client over one cleartext connection (prior
    knowledge), enough to multiplex GET streams: requests are encoded as
    HPACK literals without Huffman coding; responses are kept as raw header
    blocks and bodies. (curl 7.88.1, Debian 12's, cannot reuse an h2c
    connection: curl/curl#10634, fixed in curl 8.0; and Python's h2 package
    is not installed.)"""
    FRAME_NAMES = {0: "DATA", 1: "HEADERS", 3: "RST_STREAM", 4: "SETTINGS", 6: "PING",
                   7: "GOAWAY", 8: "WINDOW_UPDATE"}

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.streams = {}  # id -> {"headers": bytes, "data": bytes, "ended": bool}
        self.errors = []   # RST_STREAM / GOAWAY frames received
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self.frame(4, 0, 0, b""))

    @staticmethod
    def frame(kind, flags, stream, payload):
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") \
            + payload

    @staticmethod
    def literal(name, value):
        """HPACK literal header field without indexing, new name, no Huffman."""
        name, value = name.encode(), value.encode()
        assert len(name) < 127 and len(value) < 127
        return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value

    def get(self, stream, path, authority):
        block = b"".join(self.literal(n, v) for n, v in (
            (":method", "GET"), (":scheme", "http"), (":path", path), (":authority", authority)))
        self.streams[stream] = {"headers": b"", "data": b"", "ended": False}
        return self.frame(1, 0x5, stream, block)  # END_STREAM | END_HEADERS

    def read_until_done(self, deadline):
        while not all(s["ended"] for s in self.streams.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            if not chunk:
                self.errors.append("connection closed")
                return False
            self.buffer += chunk
            while len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) < 9 + length:
                    break
                kind, flags = self.buffer[3], self.buffer[4]
                stream = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
                payload, self.buffer = self.buffer[9:9 + length], self.buffer[9 + length:]
                if kind == 4 and not flags & 1:
                    self.sock.sendall(self.frame(4, 1, 0, b""))  # SETTINGS ACK
                elif kind in (3, 7):
                    self.errors.append((self.FRAME_NAMES[kind], stream, payload.hex()))
                elif kind in (0, 1) and stream in self.streams:
                    entry = self.streams[stream]
                    if kind == 1:
                        assert flags & 0x4, "CONTINUATION frames are not handled by this client"
                        entry["headers"] += payload
                    else:
                        entry["data"] += payload
                    if flags & 0x1:
                        entry["ended"] = True
        return True

    def close(self):
        self.sock.close()


def test_h2c_20_concurrent_streams(h2c_server):
    """20 streams multiplexed over one h2c connection (all HEADERS written
    at once): every stream answers :status 200 with its body, no stream is
    reset, and they run concurrently (20 x 1 s sleeps finish in < 5 s)."""
    client = H2cClient(h2c_server.port)
    try:
        started = time.monotonic()
        client.sock.sendall(b"".join(
            client.get(2 * i + 1, "/sleep?s=1&n=%d" % i, "127.0.0.1:%d" % h2c_server.port)
            for i in range(20)))
        finished = client.read_until_done(started + 15)
        elapsed = time.monotonic() - started
    finally:
        client.close()
    print("[gthread h2c] 20 multiplexed streams in %.2fs" % elapsed)
    assert not client.errors, client.errors
    assert finished, "streams unfinished after 15 s: %r" % {
        k: v for k, v in client.streams.items() if not v["ended"]}
    for stream, entry in client.streams.items():
        # 0x88 is HPACK's indexed ":status: 200" (static table entry 8).
        assert entry["headers"][:1] == b"\x88", (stream, entry)
        assert entry["data"] == b"slept\n", (stream, entry)
    assert elapsed < 5, "20 streams took %.2fs: not concurrent" % elapsed


@pytest.mark.parametrize("kind", KEEPALIVE_CLASSES)
def test_tls_h2_20_parallel_streams_curl(spawn, certs, kind):
    """Over TLS with ALPN h2, curl --parallel multiplexes 20 requests on one
    connection: all 200 over HTTP/2, one connect in all."""
    server = tls_server(spawn, certs, kind, "--http-protocols", "h1,h2", "--threads", "20")
    urls = ["https://127.0.0.1:%d/sleep?s=1&n=%d" % (server.port, i) for i in range(20)]
    started = time.monotonic()
    code, out, err = curl("-k", "--http2", "--parallel", "--parallel-max", "20",
                          "-w", "%{http_code} %{http_version} %{num_connects}\n",
                          *[arg for u in urls for arg in ("-o", "/dev/null", u)], timeout=30)
    elapsed = time.monotonic() - started
    results = [line.split() for line in out.decode().splitlines() if line.strip()]
    print("[%s TLS h2] 20 parallel curl transfers in %.2fs, %d connect(s)"
          % (kind, elapsed, sum(int(r[2]) for r in results)))
    assert code == 0, err
    assert len(results) == 20, out
    assert all(r[:2] == ["200", "2"] for r in results), results
    assert sum(int(r[2]) for r in results) == 1, "more than one connection: %r" % results
    assert elapsed < 5, "20 streams took %.2fs: not concurrent" % elapsed


# -- 11. load with hey -------------------------------------------------------

def parse_hey(output):
    """Status code counts and error lines from hey's report."""
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)}
    errors = []
    if "Error distribution:" in output:
        errors = [line.strip() for line in output.split("Error distribution:", 1)[1].splitlines()
                  if line.strip()]
    return codes, errors


@pytest.mark.parametrize("kind", list(CLASSES))
def test_load_hey(spawn, kind):
    """hey -n 5000 -c 100 against a small Flask app with -w 2: zero errors,
    all 5000 responses 2xx."""
    hey = shutil.which("hey")
    if not hey:
        pytest.skip("hey is not installed (apt-get install hey; .ci/run installs it)")
    raise_nofile(4096)
    server = start(spawn, "seedapp:app", CLASSES[kind], workers=2)
    started = time.monotonic()
    run = subprocess.run([hey, "-n", "5000", "-c", "100", "-t", "10",
                          "http://127.0.0.1:%d/" % server.port],
                         capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    codes, errors = parse_hey(run.stdout)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", run.stdout)
    print("[%s] hey -n 5000 -c 100: %.1fs, %s req/s, codes %s, errors %s"
          % (kind, elapsed, rps.group(1) if rps else "?", codes, errors[:5]))
    assert run.returncode == 0, run.stderr
    assert not errors, errors[:10]
    assert sum(codes.values()) == 5000, codes
    assert all(200 <= c < 300 for c in codes), codes
