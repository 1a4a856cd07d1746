"""Response correctness on every worker class (issue 8): big bodies sent
whole to slow clients, latin-1 header values, app-set Server/Date and
Connection, the unread `Expect: 100-continue` body, `wsgi.early_hints`,
and sync's `--timeout` counted from the start of the request.

The app is tests/apps/respapp.py. Each server-backed case runs on sync,
gthread and async.
"""
import hashlib
import shutil
import socket
import subprocess
import time

import pytest

from harness import (ServerPool, h2_get, decode_chunked, parse_head, parse_response, read_head,
                     read_until_closed)

CLASSES = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "4"],
    "async": ["-k", "async"],
}
BIG = 20 * 1024 * 1024
# The slow reader: a small receive buffer, a stall after the head, then
# small reads with pauses, so the server's socket buffer fills and every
# send path (sendfile included) meets EAGAIN many times.
SLOW_RCVBUF = 32 * 1024
SLOW_PIECE = 16 * 1024
SLOW_STALL = 0.5
SLOW_PAUSE_EVERY = 16
SLOW_PAUSE = 0.01
SLOW_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    """A 20 MiB file of varied bytes; its path and SHA-256."""
    path = tmp_path_factory.mktemp("big") / "big.bin"
    block = hashlib.sha256(b"ferricorn").digest() * 2048  # 64 KiB
    with open(path, "wb") as handle:
        for index in range(BIG // len(block)):
            handle.write(bytes([index % 256]) + block[1:])
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module", params=sorted(CLASSES))
def server(request, ferricorn_bin, big_file):
    """respapp on one worker of each class. The long keep-alive means a
    connection closed within a test's wait was closed for its response."""
    with ServerPool(ferricorn_bin) as pool:
        yield pool.start("respapp:application",
                         args=[*CLASSES[request.param], "--keep-alive", "30",
                               "-e", "BIG_FILE=" + big_file[0]])


def iterable_hash(size):
    """The SHA-256 of respapp's big_iterable(size)."""
    digest = hashlib.sha256()
    sent = index = 0
    while sent < size:
        n = min(64 * 1024, size - sent)
        digest.update(bytes([index % 251]) * n)
        sent += n
        index += 1
    return digest.hexdigest()


def slow_get(server, target):
    """GETs `target` with a slow reader; returns (status, headers, body
    length, body SHA-256). Chunked bodies are decoded."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    sock.settimeout(SLOW_TIMEOUT)
    sock.connect(("127.0.0.1", server.port))
    with sock:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      % target).encode())
        head, first = read_head(sock, timeout=SLOW_TIMEOUT)
        _, status, headers = parse_head(head)
        time.sleep(SLOW_STALL)
        raw = bytearray(first)
        reads = 0
        while True:
            piece = sock.recv(SLOW_PIECE)
            if not piece:
                break
            raw += piece
            reads += 1
            if reads % SLOW_PAUSE_EVERY == 0:
                time.sleep(SLOW_PAUSE)
    body = bytes(raw)
    if ("transfer-encoding", "chunked") in headers:
        body, rest = decode_chunked(body)
        assert rest == b""
    return status, dict(headers), len(body), hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("target", ["/file", "/flask/file"])
def test_big_file_reaches_a_slow_client_whole(server, big_file, target):
    """A 20 MiB real file through wsgi.file_wrapper (sendfile on sync) and
    through Flask's send_file arrives byte for byte at a client that reads
    slowly: EAGAIN from a full socket buffer is waiting, not a hang-up."""
    status, headers, length, digest = slow_get(server, target)
    assert status == 200
    assert headers.get("content-length") == str(BIG)
    assert length == BIG
    assert digest == big_file[1]


def test_big_iterable_reaches_a_slow_client_whole(server):
    """A 20 MiB iterable body arrives whole at a slow reader."""
    status, headers, length, digest = slow_get(server, "/iter")
    assert status == 200
    assert length == BIG
    assert digest == iterable_hash(BIG)



# -- header encoding and server headers -----------------------------------

def raw_request(server, target, headers=(), timeout=10.0):
    """One request with Connection: close; the whole reply as a Response."""
    lines = ["GET %s HTTP/1.1" % target, "Host: x", *("%s: %s" % h for h in headers),
             "Connection: close"]
    reply = server.raw(("\r\n".join(lines) + "\r\n\r\n").encode(), timeout=timeout)
    assert reply.closed, reply
    return reply


def test_latin1_header_value_goes_out_as_latin1(server):
    """PEP 3333: a header value is a latin-1 string; `café` goes out with
    é as the single byte 0xE9, not as UTF-8."""
    reply = raw_request(server, "/header?value=caf%C3%A9")
    head = reply.data.partition(b"\r\n\r\n")[0]
    assert b"\r\nX-Value: caf\xe9\r\n" in head, head
    assert b"caf\xc3\xa9" not in head


def test_non_latin1_header_value_is_a_500_and_logged(server):
    """A value outside latin-1 (`€`) is never sent: a 500, and the error
    log names the header (not its value, which may be a secret)."""
    mark = server.mark()
    reply = raw_request(server, "/header?value=10%E2%82%AC")
    _, status, _ = parse_head(reply.data.partition(b"\r\n\r\n")[0])
    assert status == 500
    assert b"X-Value" not in reply.data and b"\xe2\x82\xac" not in reply.data
    server.stderr.wait_for(r"Error handling request /header\?value=10%E2%82%AC", start=mark)
    server.stderr.wait_for(r'ValueError: Invalid response header from the application: '
                           r'"X-Value"', start=mark)


def test_app_server_and_date_replace_ours(server):
    """The app's Server and Date are sent, and no second one of either."""
    response = parse_response(raw_request(server, "/server-date").data)
    assert response.status == 200
    assert response.all("server") == ["app-server/1.0"]
    assert response.all("date") == ["Tue, 01 Jan 2030 00:00:00 GMT"]


def test_our_server_and_date_when_the_app_sets_none(server):
    """Without app values: exactly one Server (ferricorn) and one Date."""
    response = parse_response(raw_request(server, "/").data)
    assert response.all("server") == ["ferricorn"]
    assert len(response.all("date")) == 1


@pytest.fixture(scope="module", params=["gthread", "async"])
def h2c(request, ferricorn_bin, big_file):
    """respapp serving h2c (prior knowledge) on a threaded class."""
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    with ServerPool(ferricorn_bin) as pool:
        yield pool.start("respapp:application",
                         args=[*CLASSES[request.param], "--http2-cleartext", "prior-knowledge",
                               "-e", "BIG_FILE=" + big_file[0]])


def curl_h2(server, target):
    """curl --http2-prior-knowledge; (HTTP version, raw header bytes, body)."""
    run = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null",
                          "-w", "%{http_version}",
                          "http://127.0.0.1:%d%s" % (server.port, target)],
                         capture_output=True, timeout=30)
    assert run.returncode == 0, run.stderr
    head, _, version = run.stdout.rpartition(b"\r\n\r\n")
    return version.decode(), head


def test_h2_head_has_no_content(h2c):
    """HTTP/2 HEAD: the app's headers, no DATA (RFC 9110 9.3.2; the h2
    library refuses a HEAD response that carries content)."""
    headers, body, _ = h2_get(h2c.port, "/", method="HEAD")
    assert headers[b":status"] == b"200"
    assert body == b""
    headers, body, _ = h2_get(h2c.port, "/")
    assert headers[b":status"] == b"200" and body


def test_h2_latin1_and_app_server_date(h2c):
    """HTTP/2: `café` as latin-1 bytes; the app's Server and Date, one of
    each; a non-latin-1 value is a 500."""
    version, head = curl_h2(h2c, "/header?value=caf%C3%A9")
    assert version == "2"
    assert b"\r\nx-value: caf\xe9" in head, head
    _, head = curl_h2(h2c, "/server-date")
    lines = head.lower().split(b"\r\n")
    assert [l for l in lines if l.startswith(b"server:")] == [b"server: app-server/1.0"]
    assert [l for l in lines if l.startswith(b"date:")] == [b"date: tue, 01 jan 2030 00:00:00 gmt"]
    _, head = curl_h2(h2c, "/")
    lines = head.lower().split(b"\r\n")
    assert [l for l in lines if l.startswith(b"server:")] == [b"server: ferricorn"]
    assert len([l for l in lines if l.startswith(b"date:")]) == 1
    _, head = curl_h2(h2c, "/header?value=10%E2%82%AC")
    assert head.startswith(b"HTTP/2 500"), head



# -- Connection: close -------------------------------------------------------

def keepalive_exchange(server, head, timeout=5.0):
    """Sends `head` (a request that allows keep-alive) and reads until the
    server closes; returns (Response, RawReply)."""
    with server.connection(timeout) as sock:
        sock.sendall(head)
        reply = read_until_closed(sock, timeout)
    return parse_response(reply.data), reply


def test_app_connection_close_is_announced_and_done(server):
    """The app's `Connection: close` on a keep-alive request: the response
    says `Connection: close`, and the server then closes."""
    response, reply = keepalive_exchange(server, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 200
    assert response.all("connection") == ["close"]
    assert response.body == b"closing" and response.rest == b""
    assert reply.closed, reply


def test_unread_expect_continue_body_closes(server):
    """`Expect: 100-continue` and an app that never reads the body: no 100
    Continue (the body is not wanted), and since the body will never come,
    the response says `Connection: close` and the server closes."""
    head = (b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
            b"Expect: 100-continue\r\n\r\n")
    response, reply = keepalive_exchange(server, head)
    assert response.status == 200, reply
    assert response.all("connection") == ["close"]
    assert response.body == b"body not read" and response.rest == b""
    assert reply.closed, reply


def test_plain_keepalive_is_kept(server):
    """The counter-case: without either, a keep-alive class says
    keep-alive and keeps the connection for the next request (sync, like
    gunicorn's, says close and closes)."""
    if server.cmd[server.cmd.index("-k") + 1] == "sync":
        response, reply = keepalive_exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response.all("connection") == ["close"] and reply.closed
        return
    with server.connection() as sock:
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head, extra = read_head(sock)
            _, status, headers = parse_head(head)
            assert status == 200 and ("connection", "keep-alive") in headers
            length = int(dict(headers)["content-length"])
            while len(extra) < length:
                extra += sock.recv(65536)



# -- wsgi.early_hints ----------------------------------------------------------

def test_early_hints_precede_the_response(server):
    """wsgi.early_hints on HTTP/1.1: each call is a `103 Early Hints` with
    its Link header, in order, then the 200."""
    reply = raw_request(server, "/early-hints")
    first, _, rest = reply.data.partition(b"\r\n\r\n")
    second, _, rest = rest.partition(b"\r\n\r\n")
    assert first == b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style"
    assert second == b"HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload; as=script"
    response = parse_response(rest)
    assert response.status == 200 and response.body == b"after hints"
    assert response.header("link") is None


def test_early_hints_not_sent_to_http10(server):
    """An HTTP/1.0 client gets no 103 (it has no interim responses), only
    the response."""
    reply = server.raw(b"GET /early-hints HTTP/1.0\r\nHost: x\r\n\r\n")
    assert reply.data.startswith(b"HTTP/1.0 200 "), reply
    assert b" 103 " not in reply.data


def test_early_hints_are_a_no_op_on_h2(h2c):
    """HTTP/2: hyper's server cannot send interim responses, so the
    callable does nothing; the app's response arrives as usual."""
    run = subprocess.run(["curl", "-s", "-v", "--http2-prior-knowledge",
                          "http://127.0.0.1:%d/early-hints" % h2c.port],
                         capture_output=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"after hints"
    assert b"< HTTP/2 200" in run.stderr and b"103" not in run.stderr


# -- sync --timeout -----------------------------------------------------------

@pytest.fixture(scope="module")
def sync_t2(ferricorn_bin, big_file):
    """respapp on one sync worker with -t 2."""
    with ServerPool(ferricorn_bin) as pool:
        yield pool.start("respapp:application",
                         args=["-k", "sync", "-t", "2", "-e", "BIG_FILE=" + big_file[0]])


def timed_get(server, target, timeout=10.0):
    """GETs `target` on a raw connection; (reply, seconds until it ended)."""
    started = time.monotonic()
    with server.connection(timeout) as sock:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target).encode())
        reply = read_until_closed(sock, timeout)
    return reply, time.monotonic() - started


@pytest.mark.parametrize("attempt", range(10))
def test_sync_request_under_timeout_is_not_killed(sync_t2, attempt):
    """-t 2: a 1.8 s request is answered, however long the worker was idle
    before it: the timeout counts from the start of the request, not from
    the idle loop's last heartbeat."""
    # The idle time before the request is what is tested: ten different
    # gaps spread over several of the idle loop's 250 ms heartbeat periods.
    time.sleep(0.3 + 0.07 * attempt)
    mark = sync_t2.mark()
    reply, elapsed = timed_get(sync_t2, "/sleep?s=1.8")
    assert reply.data.startswith(b"HTTP/1.1 200 "), (elapsed, reply)
    assert reply.data.endswith(b"slept")
    assert "WORKER TIMEOUT" not in sync_t2.log(mark)


def test_sync_request_over_timeout_is_killed_after_it(sync_t2):
    """-t 2: a 2.5 s request is killed (WORKER TIMEOUT logged, the client
    gets no response) and not before 2 s have passed; a new worker serves."""
    mark = sync_t2.mark()
    reply, elapsed = timed_get(sync_t2, "/sleep?s=2.5")
    assert reply.closed and reply.data == b"", reply
    assert 2.0 <= elapsed < 2.5, elapsed
    sync_t2.stderr.wait_for(r"WORKER TIMEOUT \(pid:\d+\)", start=mark)
    sync_t2.stderr.wait_for(r"Booting worker with pid", start=mark, timeout=20)
    assert sync_t2.wait_until_serving() == 200
