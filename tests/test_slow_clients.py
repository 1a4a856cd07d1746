"""Slow clients cannot take a worker down (issue 13): slow readers of big
responses and R.U.D.Y. (bodies trickled a byte at a time) against every
class with `-w 2`, while a normal client keeps being served quickly and
the workers' memory stays bounded; plus --send-timeout and --body-timeout.

Every attacking connection is real (loopback sockets); the attack lasts a
few seconds; all waits are bounded.
"""
import hashlib
import os
import resource
import signal
import socket
import statistics
import threading
import time

import pytest

from harness import parse_response, read_until_closed

CLASSES = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "4"],
    "async": ["-k", "async"],
}
BIG = 20 * 1024 * 1024
SLOW_READERS = 300
RUDY = 50
RUDY_LENGTH = 100_000  # under the 1 MiB read-ahead: read on the event loop
PROBES = 40
PROBE_TIMEOUT = 3.0
P99_LIMIT = 0.2
# Per worker: its baseline (~20 MB with the interpreter) plus, for each of
# the ~150 slow readers it holds, at most one --response-buffer (256 KiB)
# and one app chunk (64 KiB), ~47 MB, plus allocator slack and, in async,
# the app threads its pool grows (peaks seen: 40-75 MB). Buffering the
# 20 MB responses of 150 readers would be 3 GB.
RSS_LIMIT_MB = 150


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors():
    """300 slow readers, 50 R.U.D.Y. connections and the probes, on both
    ends (the server inherits this process's limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < 2 * (SLOW_READERS + RUDY) + 200:
        pytest.skip("RLIMIT_NOFILE hard limit %d is too low for the attack" % hard)
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("slow") / "big.bin"
    block = os.urandom(1 << 20)
    with open(path, "wb") as handle:
        for _ in range(BIG >> 20):
            handle.write(block)
    return path


def start(spawn, big_file, kind, *extra):
    return spawn.start("slowapp:application", args=[*CLASSES[kind], *extra],
                       env={"SLOW_FILE": str(big_file)})


def vm_rss_mb(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS for pid %d" % pid)


def non_reader(server, path):
    """A connection that asks for `path` and never reads (a small receive
    buffer, so the kernel does not soak up the response for it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    return sock


def probe(server):
    """One normal request on a fresh connection: its latency, or None."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = read_until_closed(sock, PROBE_TIMEOUT)
        response = parse_response(reply.data)
    except (OSError, ValueError, AssertionError):
        return None
    if response.status != 200 or response.body != b"ok":
        return None
    return time.monotonic() - started


class Rudy:
    """R.U.D.Y.: connections that announce a body (half with a
    Content-Length, half as one chunk) and trickle it, one byte per
    connection every 0.2 s, from one thread."""

    def __init__(self, server, count):
        self.socks = []
        for i in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            if i % 2:
                framing = "Transfer-Encoding: chunked\r\n\r\n%x\r\n" % RUDY_LENGTH
            else:
                framing = "Content-Length: %d\r\n\r\n" % RUDY_LENGTH
            sock.sendall(("POST /upload HTTP/1.1\r\nHost: x\r\n" + framing).encode())
            self.socks.append(sock)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.trickle, daemon=True)
        self.thread.start()

    def trickle(self):
        while not self.stop.wait(0.2):
            for sock in self.socks:
                try:
                    sock.send(b"x")
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


@pytest.mark.parametrize("kind", list(CLASSES))
def test_slow_readers_and_rudy_do_not_take_a_worker_down(spawn, big_file, kind):
    """300 connections that never read a 20 MB response (half a file
    through wsgi.file_wrapper, half an iterable) and 50 trickling a body:
    a normal client still gets 40/40 answers with p99 under 200 ms, each
    worker's RSS stays under 150 MB, and the server is healthy after."""
    server = start(spawn, big_file, kind, "-w", "2")
    workers = server.booted_pids()[-2:]
    baseline = {pid: vm_rss_mb(pid) for pid in workers}
    readers = []
    rudy = None
    try:
        for i in range(SLOW_READERS):
            path = "/big-file" if i % 2 == 0 else "/big-iter?r%d" % i
            readers.append(non_reader(server, path))
        rudy = Rudy(server, RUDY)
        for sock in readers:
            # Every response has begun (peeking takes nothing off the
            # socket): the app has served each attacker once.
            assert sock.recv(1, socket.MSG_PEEK) == b"H"
        latencies = []
        peak = dict(baseline)
        for _ in range(PROBES):
            latencies.append(probe(server))
            for pid in workers:
                peak[pid] = max(peak[pid], vm_rss_mb(pid))
            time.sleep(0.05)
    finally:
        if rudy:
            rudy.close()
        for sock in readers:
            sock.close()
    answered = sorted(t for t in latencies if t is not None)
    # Python's inclusive quantile: of 40 samples, between the two slowest.
    p99 = statistics.quantiles(answered, n=100, method="inclusive")[98] if answered else -1
    print("[%s] %d/%d answered; latencies ms: p50 %.1f p99 %.1f max %.1f; RSS MB baseline %s peak %s"
          % (kind, len(answered), PROBES,
             1000 * answered[len(answered) // 2] if answered else -1,
             1000 * p99,
             1000 * answered[-1] if answered else -1,
             {p: round(v, 1) for p, v in baseline.items()},
             {p: round(v, 1) for p, v in peak.items()}))
    assert len(answered) == PROBES, "%d of %d probes answered" % (len(answered), PROBES)
    assert p99 < P99_LIMIT, "p99 %.0f ms; latencies ms: %s" % (
        1000 * p99, [round(1000 * t, 1) for t in answered])
    for pid, rss in peak.items():
        assert rss < RSS_LIMIT_MB, "worker %d peaked at %.1f MB RSS" % (pid, rss)
    # Healthy after: full responses, byte for byte, to a normal client.
    status, _, body = server.get("/big-file", timeout=30)
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(big_file.read_bytes()).digest()
    status, _, body = server.get("/big-iter?after", timeout=30)
    assert status == 200 and body == b"x" * BIG
    assert server.proc.poll() is None
    assert server.booted_pids()[-2:] == workers, "a worker was replaced"


@pytest.mark.parametrize("kind", list(CLASSES))
def test_send_timeout_drops_a_non_reader_and_closes_the_app(spawn, big_file, kind):
    """--send-timeout 2: a client that never reads its 20 MB iterable is
    dropped about 2 s after it stopped taking bytes, and the iterable's
    close() is called, having been pulled only a little of the way."""
    server = start(spawn, big_file, kind, "--send-timeout", "2")
    mark = server.mark()
    started = time.monotonic()
    sock = non_reader(server, "/big-iter?stuck")
    try:
        line = server.stderr.wait_for(r"slowapp-closed tag=stuck pulled=(\d+)",
                                      timeout=15, start=mark)[0]
        elapsed = time.monotonic() - started
        pulled = int(line.group(1))
        assert elapsed >= 1.8, "closed after %.2fs" % elapsed
        assert pulled < BIG, "the whole response was pulled into memory"
        sock.settimeout(10)
        reply = read_until_closed(sock, 10)
        assert reply.closed or reply.reset, reply
        assert len(reply.data) < BIG
    finally:
        sock.close()
    assert server.get("/probe")[2] == b"ok"


@pytest.mark.parametrize("kind", list(CLASSES))
def test_body_timeout_is_408(spawn, big_file, kind):
    """--body-timeout 1: a body larger than the read-ahead (3 MiB) that
    stops arriving gets 408 and the app's read raises OSError."""
    server = start(spawn, big_file, kind, "--body-timeout", "1")
    mark = server.mark()
    head = b"POST /upload?stalled HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (3 << 20)
    started = time.monotonic()
    with server.connection(15) as sock:
        sock.sendall(head + b"y" * 100_000)
        reply = read_until_closed(sock, 15)
    elapsed = time.monotonic() - started
    response = parse_response(reply.data)
    assert response.status == 408, response
    assert elapsed >= 0.9, "answered after %.2fs" % elapsed
    server.stderr.wait_for(r"slowapp-read-error tag=stalled .*timed out", start=mark)
    assert server.get("/probe")[2] == b"ok"


@pytest.mark.parametrize("kind", list(CLASSES))
def test_graceful_stop_finishes_a_slow_readers_response(spawn, big_file, kind):
    """TERM while a response waits in the buffer for a slow reader: the
    worker finishes sending it (within --graceful-timeout) before exiting,
    and the client that starts reading again gets every byte."""
    server = start(spawn, big_file, kind)
    sock = non_reader(server, "/big-iter?term")
    try:
        assert sock.recv(1, socket.MSG_PEEK) == b"H"
        mark = server.mark()
        server.signal(signal.SIGTERM)
        server.stderr.wait_for(r"Handling signal: term", start=mark)
        reply = read_until_closed(sock, 30)
    finally:
        sock.close()
    response = parse_response(reply.data)
    assert response.status == 200
    assert len(response.body) == BIG and response.body == b"x" * BIG
    assert server.wait(15) == 0


def test_sync_timeout_does_not_count_a_slow_readers_time(spawn, big_file):
    """sync with --timeout 2: a client that stops reading for 4 s does not
    get the worker aborted (the app is done; only the client is slow), the
    worker keeps serving meanwhile, and the client then gets every byte."""
    server = start(spawn, big_file, "sync", "--timeout", "2", "--send-timeout", "20")
    worker = server.booted_pids()[-1]
    sock = non_reader(server, "/big-iter?paused")
    try:
        assert sock.recv(1, socket.MSG_PEEK) == b"H"
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert probe(server) is not None
            time.sleep(0.2)  # paces the probes over the 4 s; not a readiness wait
        reply = read_until_closed(sock, 30)
    finally:
        sock.close()
    response = parse_response(reply.data)
    assert response.status == 200 and response.body == b"x" * BIG
    assert "WORKER TIMEOUT" not in server.log()
    assert server.booted_pids() == [worker]
