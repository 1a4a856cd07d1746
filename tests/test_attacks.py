"""Attacks no client may win: each runs against `-w 2` while a probe client
measures that everyone else is still served (every probe answered, p99
under 200 ms), the workers' memory stays bounded and the server is healthy
afterwards.

- idle keep-alive floods at the `--worker-connections` cap
- silent connections past RLIMIT_NOFILE (fd exhaustion)
- an app thread holding the GIL in C (the worker must be replaced)
- HTTP/2 rapid reset (CVE-2023-44487) and CONTINUATION floods
- garbage bytes and TLS 1.0/1.1 handshakes
"""
import http.client
import math
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from harness import Server, get_status_body

THREADED = ["gthread", "async"]
ALL = ["sync", "gthread", "async"]
# "asgi": -k async serving an ASGI app.
ASGI = "asgi"
PROBES = 40
PROBE_TIMEOUT = 3.0
P99_LIMIT = 0.2
# A worker's resident memory may grow this much during an attack.
RSS_GROWTH_LIMIT_KB = 64 * 1024


def probe(server, count=PROBES, path="/"):
    """`count` GETs, each on a fresh connection; returns their latencies.
    Fails unless every one is answered 200 within PROBE_TIMEOUT."""
    latencies, failures = [], []
    for _ in range(count):
        started = time.monotonic()
        try:
            status, body = get_status_body(server.port, path, timeout=PROBE_TIMEOUT)
        except OSError as error:
            failures.append(repr(error))
            continue
        latencies.append(time.monotonic() - started)
        if status != 200 or body != b"ok\n":
            failures.append((status, body))
    assert not failures, "%d/%d probes failed: %r" % (len(failures), count, failures[:5])
    return latencies


def probe_raw(server, count=PROBES):
    """`count` GETs on fresh connections of the server's own address (TCP
    or unix); returns their latencies. Fails unless each is answered 200."""
    latencies = []
    for _ in range(count):
        started = time.monotonic()
        reply = server.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                           timeout=PROBE_TIMEOUT)
        assert reply.data.startswith(b"HTTP/1.1 200") and reply.data.endswith(b"ok\n"), reply
        latencies.append(time.monotonic() - started)
    return latencies


def p99(latencies):
    """The nearest-rank 99th percentile (the slowest of 40)."""
    ordered = sorted(latencies)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def assert_fast(latencies):
    # Shown with `pytest -s`: the figures the table reports.
    print("[%s] %d probes answered, p99 %.1f ms" % (
        os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0], len(latencies),
        p99(latencies) * 1000))
    assert p99(latencies) < P99_LIMIT, "p99 %.0f ms; latencies (ms): %s" % (
        p99(latencies) * 1000, [round(x * 1000) for x in sorted(latencies)])


def workers(server):
    """Pids of the master's live worker processes."""
    pids = []
    for task in os.listdir("/proc/%d/task" % server.proc.pid):
        with open("/proc/%d/task/%s/children" % (server.proc.pid, task)) as handle:
            pids += [int(pid) for pid in handle.read().split()]
    return pids


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def workers_rss(server):
    return {pid: rss_kb(pid) for pid in workers(server)}


def assert_rss_bounded(before, server):
    after = workers_rss(server)
    assert set(after) == set(before), "workers changed during the attack: %r -> %r" % (
        before, after)
    grown = {pid: after[pid] - before[pid] for pid in after}
    assert max(grown.values()) < RSS_GROWTH_LIMIT_KB, "worker RSS grew (kB): %r" % grown


def app_args(kind):
    """The app and `-k` for a kind of THREADED/ALL, or ASGI."""
    if kind == ASGI:
        return "attackapp:asgi_application", ["-k", "async"]
    return "attackapp:application", ["-k", kind]


def start(spawn, kind, *args, workers_count=2, binary=None, server_cls=Server):
    app, class_args = app_args(kind)
    server = server_cls(binary or spawn.binary, app,
                        args=[*class_args, "-w", str(workers_count), *args],
                        workers=workers_count)
    spawn.servers.append(server)
    return server.start()


def open_connections(server, count):
    socks = []
    for _ in range(count):
        socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
    return socks


def closed_by_server(sock):
    """Whether the server closed `sock` (EOF or reset is waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


# -- idle floods ----------------------------------------------------------------

@pytest.mark.parametrize("kind", THREADED + [ASGI])
def test_idle_keepalive_flood_at_the_connection_cap(spawn, kind):
    """300 keep-alive connections, each idle after one request, against two
    workers of 100 connections each: new clients are admitted by closing
    the oldest idle connections, not after the 30 s keep-alive."""
    server = start(spawn, kind, "--keep-alive", "30", "--worker-connections", "100")
    before = workers_rss(server)
    attackers = open_connections(server, 300)
    try:
        for sock in attackers:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            # Served even past the cap: room is made by closing idle ones.
            assert sock.recv(4096).startswith(b"HTTP/1.1 200"), "an attacker went unserved"
        latencies = probe(server)
        assert_fast(latencies)
        evicted = sum(closed_by_server(sock) for sock in attackers)
        assert evicted >= 100, "only %d idle connections were closed" % evicted
        assert_rss_bounded(before, server)
    finally:
        for sock in attackers:
            sock.close()
    assert get_status_body(server.port)[0] == 200


@pytest.mark.parametrize("kind", ALL + [ASGI])
def test_silent_flood_at_the_connection_cap(spawn, tmp_path, kind):
    """300 connections that send nothing against two workers of 100
    connections each: both workers fill up (one at its cap leaves queued
    connections to its sibling for a moment), then the oldest silent ones
    are closed to admit new clients, who do not wait for --header-timeout. (On a unix socket: on
    TCP, TCP_DEFER_ACCEPT keeps silent connections in the kernel for a
    while, which would make the attack's timing the kernel's.)"""
    path = str(tmp_path / "s.sock")
    app, class_args = app_args(kind)
    control = str(tmp_path / "c.ctl")
    server = spawn.prepare(app, bind="unix:" + path,
                           args=[*class_args, "-w", "2", "--worker-connections", "100",
                                 "--control-socket", control],
                           workers=2).start()
    # A worker still booting when the flood comes would leave it all to
    # its sibling.
    server.wait_until_workers_ready(control)
    before = workers_rss(server)
    base_fds = {pid: open_fds(pid) for pid in before}
    attackers = [server.connection() for _ in range(300)]
    try:
        deadline = time.monotonic() + 10
        while min(open_fds(pid) - base_fds[pid] for pid in base_fds) < 95:
            assert time.monotonic() < deadline, "the workers never took the connections: %r" % {
                pid: open_fds(pid) - base_fds[pid] for pid in base_fds}
            time.sleep(0.05)
        assert_fast(probe_raw(server))
        evicted = sum(closed_by_server(sock) for sock in attackers)
        assert evicted >= 100, "only %d silent connections were closed" % evicted
        assert_rss_bounded(before, server)
    finally:
        for sock in attackers:
            sock.close()


# -- fd exhaustion --------------------------------------------------------------

@pytest.fixture
def low_nofile(ferricorn_bin, tmp_path):
    """A ferricorn launcher with RLIMIT_NOFILE 256 (master and workers)."""
    wrapper = tmp_path / "ferricorn-256"
    wrapper.write_text('#!/bin/sh\nulimit -n 256 || exit 99\nexec "%s" "$@"\n' % ferricorn_bin)
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.mark.parametrize("kind", ALL + [ASGI])
def test_silent_connections_past_the_descriptor_limit(spawn, low_nofile, tmp_path, kind):
    """600 silent connections against two workers limited to 256
    descriptors each: accept() fails with EMFILE, the worker logs it (once
    a second at most), closes the oldest silent connections and serves
    new clients at once. (On a unix socket, as the silent flood: on TCP,
    TCP_DEFER_ACCEPT hands silent connections over when the kernel's
    timer says, so whether both workers fill up would be the kernel's
    timing.)"""
    app, class_args = app_args(kind)
    control = str(tmp_path / "c.ctl")
    server = spawn.prepare(app, bind="unix:" + str(tmp_path / "s.sock"),
                           args=[*class_args, "-w", "2", "--control-socket", control],
                           workers=2)
    server.binary = low_nofile
    server.start()
    server.wait_until_workers_ready(control)
    before = workers_rss(server)
    mark = server.mark()
    attackers = [server.connection() for _ in range(600)]
    try:
        deadline = time.monotonic() + 10
        while min(map(open_fds, workers(server))) < 240:
            assert time.monotonic() < deadline, "the workers never ran out of descriptors"
            time.sleep(0.05)
        assert_fast(probe_raw(server))
        server.stderr.wait_for(r"accept\(\) failed: Too many open files", start=mark)
        reports = [line for line in server.stderr.lines[mark:] if "accept() failed" in line]
        # Two workers, a few seconds: a handful of lines, not one per attempt.
        assert len(reports) <= 20, "accept() errors are not rate-limited:\n%s" % "\n".join(
            reports[:30])
        assert_rss_bounded(before, server)
    finally:
        for sock in attackers:
            sock.close()
    probe_raw(server, count=1)


# -- GIL-holding apps -----------------------------------------------------------

@pytest.mark.parametrize("kind", THREADED)
def test_app_holding_the_gil_gets_the_worker_replaced(spawn, kind):
    """/hog holds the GIL in C for minutes. The event loop, which never
    takes the GIL, keeps running, but the worker's heartbeat proves the app
    side can run Python: it stops, and the master replaces the worker after
    --timeout, as gunicorn does for gthread."""
    timeout = 3
    server = start(spawn, kind, "--timeout", str(timeout))
    mark = server.mark()
    hog = server.connection()
    try:
        hog.sendall(b"GET /hog HTTP/1.1\r\nHost: x\r\n\r\n")
        sent = time.monotonic()
        line = server.stderr.wait_for(r"WORKER TIMEOUT \(pid:(\d+)\)", timeout=timeout + 8,
                                      start=mark)[0]
        took = time.monotonic() - sent
        assert took < timeout + 3, "replaced only after %.1fs" % took
        server.stderr.wait_for(r"Booting worker with pid", start=mark)
        hung = int(line.group(1))
        deadline = time.monotonic() + 10
        while hung in workers(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hung not in workers(server), "the hung worker was not killed"
    finally:
        hog.close()
    # Both workers (one of them new) serve again.
    server.wait_until_serving(10)
    probe(server, count=10)


@pytest.mark.parametrize("kind", THREADED)
def test_app_sleeping_past_the_timeout_keeps_its_worker(spawn, kind):
    """A request in time.sleep releases the GIL: the worker is busy, not
    hung, and stays (--timeout 2, a 4 s request)."""
    server = start(spawn, kind, "--timeout", "2", workers_count=1)
    mark = server.mark()
    status, body = get_status_body(server.port, "/sleep?s=4", timeout=10)
    assert (status, body) == (200, b"ok\n")
    assert "WORKER TIMEOUT" not in server.log(mark)


# -- HTTP/2 ----------------------------------------------------------------------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0x1, 0x3, 0x4, 0x6, 0x7, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4
CANCEL = 0x8
# HPACK: :method GET, :scheme http, :path / (static table), :authority x.
REQUEST_BLOCK = b"\x82\x86\x84\x01\x01x"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(
        ">I", stream) + payload


def h2_connection(server):
    sock = server.connection(timeout=0.2)
    sock.sendall(H2_PREFACE + frame(SETTINGS, 0, 0))
    return sock


def drain(sock, stop):
    """Reads and discards what the server sends until it closes or `stop`."""
    while not stop.is_set():
        try:
            if not sock.recv(65536):
                return
        except socket.timeout:
            continue
        except OSError:
            return


def h2_start(spawn, kind):
    return start(spawn, kind, "--http2-cleartext", "prior-knowledge")


def sleep_request(seconds):
    """HPACK: GET /sleep?s=SECONDS (a literal :path), :authority x."""
    path = b"/sleep?s=%g" % seconds
    return b"\x82\x86\x04" + bytes([len(path)]) + path + b"\x01\x01x"


def until_ping_ack(sock):
    """Reads frames until the server acknowledges our PING (so it has read
    everything sent before it); raises OSError once it sends GOAWAY."""
    buf = b""
    while True:
        while len(buf) >= 9:
            length, kind, flags = int.from_bytes(buf[:3], "big"), buf[3], buf[4]
            if len(buf) < 9 + length:
                break
            if kind == GOAWAY:
                raise OSError("GOAWAY")
            if kind == PING and flags & 1:
                return
            buf = buf[9 + length:]
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed")
        buf += chunk


def reset_at_once(sock, stop, counter):
    """HEADERS and RST_STREAM back to back, 100 streams a write."""
    reader = threading.Thread(target=drain, args=(sock, stop), daemon=True)
    reader.start()
    stream = 1
    try:
        while not stop.is_set():
            sock.sendall(b"".join(
                frame(HEADERS, END_HEADERS | END_STREAM, s, REQUEST_BLOCK)
                + frame(RST_STREAM, 0, s, struct.pack(">I", CANCEL))
                for s in range(stream, stream + 200, 2)))
            counter[0] += 100
            stream += 200
    finally:
        reader.join(1)


def reset_once_accepted(sock, stop, counter):
    """100 requests for /sleep, a PING to know the server has them (and
    has handed them to the app), then RST_STREAM on all of them."""
    request = sleep_request(0.05)
    sock.settimeout(5)
    stream = 1
    while not stop.is_set():
        ids = range(stream, stream + 200, 2)
        sock.sendall(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, s, request)
                              for s in ids) + frame(PING, 0, 0, b"ffffffff"))
        until_ping_ack(sock)
        sock.sendall(b"".join(frame(RST_STREAM, 0, s, struct.pack(">I", CANCEL))
                              for s in ids))
        counter[0] += 100
        stream += 200


@pytest.mark.parametrize("mode", [reset_at_once, reset_once_accepted])
@pytest.mark.parametrize("kind", THREADED + [ASGI])
def test_h2_rapid_reset(spawn, kind, mode):
    """Four connections open streams and reset them as fast as they can
    (CVE-2023-44487): either before the server accepts them (h2's
    pending-reset limit answers GOAWAY) or once their app calls are queued
    (at most --http2-max-concurrent-streams calls per connection, and a
    call whose stream is gone is skipped). Memory stays bounded, HTTP/1.1
    probes on the same workers are served throughout, the log is not
    flooded, and the server is healthy afterwards."""
    server = h2_start(spawn, kind)
    before = workers_rss(server)
    mark = server.mark()
    stop = threading.Event()
    sent = [0]

    def attack():
        while not stop.is_set():
            sock = h2_connection(server)
            try:
                mode(sock, stop, sent)
            except OSError:
                pass  # the server gave up on this connection: open another
            finally:
                sock.close()

    threads = [threading.Thread(target=attack, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 5
        while sent[0] < 2000:  # the flood is under way before probing
            assert time.monotonic() < deadline, "the attack is not getting through"
            time.sleep(0.01)
        latencies = probe(server)
        assert_fast(latencies)
        assert_rss_bounded(before, server)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert get_status_body(server.port)[0] == 200
    assert len(server.stderr.lines) - mark < 20, "the attack flooded the log:\n%s" % (
        server.log(mark)[-3000:])


@pytest.mark.parametrize("kind", THREADED + [ASGI])
def test_h2_continuation_flood(spawn, kind):
    """A header block that never ends (CONTINUATION frames without
    END_HEADERS, up to 20 MB): the server closes that connection once the
    block passes its header list limit, holds no more memory, and keeps
    serving others."""
    server = h2_start(spawn, kind)
    before = workers_rss(server)
    sock = h2_connection(server)
    # A literal header x: <1000 bytes>, without indexing, per frame.
    rest = 1000 - 127
    field = b"\x00\x01x\x7f" + bytes([0x80 | (rest & 0x7F), rest >> 7]) + b"v" * 1000
    continuation = frame(CONTINUATION, 0, 1, field)
    sent, closed = 0, False
    try:
        sock.sendall(frame(HEADERS, END_STREAM, 1, REQUEST_BLOCK))
        while sent < 20 * 1024 * 1024:
            sock.sendall(continuation * 64)
            sent += len(continuation) * 64
    except OSError:
        closed = True
    finally:
        sock.close()
    assert closed, "the server took %d bytes of one header block" % sent
    latencies = probe(server)
    assert_fast(latencies)
    assert_rss_bounded(before, server)


# -- garbage and old TLS -------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL + [ASGI])
def test_garbage_is_refused_alone(spawn, kind):
    """Connections sending binary garbage get a 400 and are closed; probes
    between them are served."""
    server = start(spawn, kind)
    garbage = bytes(range(256)) * 4
    for _ in range(20):
        reply = server.raw(garbage, timeout=3)
        assert reply.closed, reply
        assert reply.data.startswith(b"HTTP/1.1 400"), reply
    assert_fast(probe(server))


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    directory = tmp_path_factory.mktemp("attack-tls")
    run = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                          "-keyout", "key.pem", "-out", "cert.pem", "-days", "2",
                          "-subj", "/CN=localhost"],
                         cwd=directory, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return directory


def unverified_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class TlsServer(Server):
    """A server whose requests (readiness included) go over TLS 1.2+."""

    def request(self, method, path, body=None, headers=None, timeout=PROBE_TIMEOUT):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=unverified_context())
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1")
@pytest.mark.parametrize("kind", ALL + [ASGI])
def test_old_tls_handshakes_are_refused_alone(spawn, cert, kind):
    """TLS 1.0 and 1.1 ClientHellos are refused (the server speaks 1.2+);
    TLS 1.2+ clients in between are served."""
    server = start(spawn, kind, "--certfile", str(cert / "cert.pem"),
                   "--keyfile", str(cert / "key.pem"), server_cls=TlsServer)
    latencies = []
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        context = unverified_context()
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = version
        for _ in range(10):
            with server.connection() as sock:
                with pytest.raises(ssl.SSLError) as refused:
                    context.wrap_socket(sock).close()
            # The server's alert, not our own OpenSSL declining to try.
            assert "ALERT" in (refused.value.reason or ""), refused.value
            started = time.monotonic()
            assert server.request("GET", "/")[::2] == (200, b"ok\n")
            latencies.append(time.monotonic() - started)
    assert_fast(latencies)
