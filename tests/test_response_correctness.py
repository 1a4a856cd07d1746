"""Response correctness on every worker class (issue 8): big bodies sent
whole to slow clients, latin-1 header values, app-set Server/Date and
Connection, the unread `Expect: 100-continue` body, `wsgi.early_hints`,
and sync's `--timeout` counted from the start of the request.

The app is tests/apps/respapp.py. Each server-backed case runs on sync,
gthread and async.
"""
import hashlib
import re
import socket
import time

import pytest

from harness import ServerPool, parse_head, read_head, read_until_closed

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
    """respapp on one worker of each class."""
    with ServerPool(ferricorn_bin) as pool:
        yield pool.start("respapp:application",
                         args=[*CLASSES[request.param], "-e", "BIG_FILE=" + big_file[0]])


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
        from harness import decode_chunked
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
    the idle loop's last heartbeat (up to a second earlier)."""
    # The idle time before the request is what is tested: ten different
    # gaps spread over the idle loop's one-second heartbeat period.
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
