"""The framework matrix of issue 8 ("every byte of every body and file
arrives"): Flask, Django, Falcon and Bottle apps (tests/apps/fw_*.py, the
same routes in each; see fw_common) under the sync, gthread and async
worker classes, each also wrapped in wsgiref.validate.validator.

One server per (framework, class, variant), module-scoped, so pytest runs
every test of one server before starting the next. The apps are real
framework apps; the clients are raw sockets, http.client and curl.
"""
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from harness import Server, parse_response, read_head, read_until_closed

FRAMEWORKS = ("flask", "django", "falcon", "bottle")
CLASSES = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "4"],
    "async": ["-k", "async"],
}
VARIANTS = ("app", "validated_app")
# A long keep-alive, so a connection the server closes promptly after an
# app's `Connection: close` cannot be mistaken for an idle timeout.
KEEP_ALIVE = "30"
BIG_FILE_SIZE = 20 * 1000 * 1000
STATIC_FILE_SIZE = 8 * 1000 * 1000
UPLOAD_SIZE = 5 * 1024 * 1024
SLOW_READ_TIMEOUT = 60.0

# Mirrors of tests/apps/fw_common.py (the test does not import the apps).
APP_SERVER = "fw-app/1.0"
APP_DATE = "Sat, 01 Jan 2000 00:00:00 GMT"
STREAM_BODY = b"".join(("part %d " % i).encode() + b"x" * 4000 + b"\n" for i in range(8))

# The bytes X-Name: café must arrive as: the latin-1 encoding of the str
# the framework passes to start_response. Bottle (on Python 3) re-encodes
# every header value as UTF-8 read back as latin-1, so its é is 2 bytes.
LATIN1_WIRE = {"flask": b"caf\xe9", "django": b"caf\xe9", "falcon": b"caf\xe9",
               "bottle": b"caf\xc3\xa9"}
# X-Price: 5 €. Flask and Falcon hand the server a str that latin-1 cannot
# encode: the server must answer 500 and log it, never send it. Django
# MIME-encodes it (RFC 2047) and Bottle transcodes it, so those two pass
# a latin-1 str and the server must send exactly its bytes.
EURO_WIRE = {"flask": None, "falcon": None, "django": b"=?utf-8?b?NSDigqw=?=",
             "bottle": b"5 \xe2\x82\xac"}


def boom_message(framework):
    return "fw-boom-%s-traceback-marker" % framework


# -- the files the apps serve ---------------------------------------------------

@pytest.fixture(scope="session")
def fw_files(tmp_path_factory):
    """The 20 MB file /file sends and the 8 MB file WhiteNoise serves, with
    their sha256 (random bytes, so a dropped or repeated block shows)."""
    root = tmp_path_factory.mktemp("fw_files")
    big = root / "big.bin"
    static = root / "static"
    static.mkdir()
    files = {}
    for path, size in ((big, BIG_FILE_SIZE), (static / "big.bin", STATIC_FILE_SIZE)):
        data = os.urandom(size)
        path.write_bytes(data)
        files[path.name if path.parent == root else "static"] = hashlib.sha256(data).hexdigest()
    return {"env": {"FW_FILE": str(big), "FW_STATIC": str(static)},
            "big_sha": files["big.bin"], "static_sha": files["static"]}


PARAMS = [(fw, kind, variant) for fw in FRAMEWORKS for kind in CLASSES for variant in VARIANTS]


@pytest.fixture(scope="module", params=PARAMS, ids=["-".join(p) for p in PARAMS])
def fw(request, ferricorn_bin, fw_files):
    """One server of fw_<framework>:<variant> under one worker class."""
    framework, kind, variant = request.param
    server = Server(ferricorn_bin, "fw_%s:%s" % (framework, variant),
                    args=["-w", "1", *CLASSES[kind], "--keep-alive", KEEP_ALIVE],
                    env=fw_files["env"])
    server.framework, server.kind, server.variant = framework, kind, variant
    server.files = fw_files
    try:
        yield server.start()
    finally:
        server.stop()


def log_clean(server, mark):
    """No wsgiref.validate complaint (an AssertionError, or the iterator
    collected without close()) in the log since `mark`."""
    text = server.log(mark)
    assert "AssertionError" not in text, text
    assert "without being closed" not in text, text


# -- raw HTTP helpers ---------------------------------------------------------

def request_bytes(method, path, headers=(), body=b"", close=True):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    lines += ["%s: %s" % h for h in headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def raw_response(server, path, method="GET", headers=(), body=b""):
    """One request on a fresh connection ending with it: the parsed Response."""
    reply = server.raw(request_bytes(method, path, headers, body))
    assert reply.data, "no response to %s %s: %r" % (method, path, reply)
    return parse_response(reply.data)


def chunked(data, sizes):
    """`data` as chunked framing, cut into chunks of the given sizes (cycled)."""
    out, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        piece = data[pos:pos + size]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        pos += len(piece)
        i += 1
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def digest(data):
    return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def slow_get(server, path, timeout=SLOW_READ_TIMEOUT):
    """GETs `path` as a slow client: a small receive buffer, small reads, and
    two stalls (before the first byte and at half way) long enough for the
    server's socket buffer to fill and its writes to block. Returns
    (Response head only, body bytes, closed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(timeout)
    try:
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(request_bytes("GET", path))
        time.sleep(0.3)  # a stalled reader, not a wait for readiness
        head, body = read_head(sock, timeout)
        resp = parse_response(head, head_request=True)
        length = int(resp.header("content-length") or -1)
        chunks, received, stalled = [body], len(body), False
        deadline = time.monotonic() + timeout
        while True:
            if not stalled and received >= BIG_FILE_SIZE // 4:
                time.sleep(0.3)
                stalled = True
            remaining = deadline - time.monotonic()
            assert remaining > 0, "slow read of %s timed out at %d bytes" % (path, received)
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(16 * 1024)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
        data = b"".join(chunks)
        return resp, length, data
    finally:
        sock.close()


def curl(*args, timeout=30):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    run = subprocess.run(["curl", "-sS", "--max-time", str(timeout - 2), *args],
                         capture_output=True, timeout=timeout)
    return run.returncode, run.stdout, run.stderr.decode("utf-8", "replace")


# -- the matrix ---------------------------------------------------------------

def test_json_post(fw):
    """POST /json: the framework parses the body and echoes it."""
    mark = fw.mark()
    doc = {"items": [1, 2, 3], "text": "h\u00e9llo \u20ac", "nested": {"n": None}}
    status, headers, body = fw.request("POST", "/json", body=json.dumps(doc).encode(),
                                       headers={"Content-Type": "application/json"})
    assert status == 200, body[:500]
    assert json.loads(body) == {"framework": fw.framework, "echo": doc}
    log_clean(fw, mark)


def test_multipart_upload_5mb(fw):
    """POST /upload of a 5 MB file part: the framework's multipart parser
    sees every byte (size and sha256 equal)."""
    mark = fw.mark()
    data = os.urandom(UPLOAD_SIZE)
    boundary = "fwmatrixboundary7d3a"
    body = b"".join([
        b"--%s\r\n" % boundary.encode(),
        b'Content-Disposition: form-data; name="note"\r\n\r\nhello\r\n',
        b"--%s\r\n" % boundary.encode(),
        b'Content-Disposition: form-data; name="file"; filename="up.bin"\r\n',
        b"Content-Type: application/octet-stream\r\n\r\n", data, b"\r\n",
        b"--%s--\r\n" % boundary.encode(),
    ])
    status, _, answer = fw.request(
        "POST", "/upload", body=body, timeout=30,
        headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
    assert status == 200, answer[:500]
    assert json.loads(answer) == {"filename": "up.bin", "size": UPLOAD_SIZE,
                                  "sha256": hashlib.sha256(data).hexdigest()}
    log_clean(fw, mark)


def test_chunked_upload_curl(fw, tmp_path):
    """curl sends a 1 MB body chunked: the app reads all of it."""
    mark = fw.mark()
    data = os.urandom(1024 * 1024)
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    code, out, err = curl("-H", "Transfer-Encoding: chunked",
                          "-H", "Content-Type: application/octet-stream",
                          "--data-binary", "@%s" % path,
                          "http://127.0.0.1:%d/chunked-len" % fw.port)
    assert code == 0, err
    assert json.loads(out) == digest(data), out[:500]
    log_clean(fw, mark)


def test_chunked_upload_raw_whole(fw):
    """A 300 KB chunked body in uneven chunks, written at once."""
    mark = fw.mark()
    data = os.urandom(300 * 1000)
    resp = raw_response(fw, "/chunked-len", "POST",
                        headers=[("Transfer-Encoding", "chunked"),
                                 ("Content-Type", "application/octet-stream")],
                        body=chunked(data, [1, 4095, 65536, 17, 100000]))
    assert resp.status == 200, resp
    assert json.loads(resp.body) == digest(data)
    log_clean(fw, mark)


def test_chunked_upload_raw_byte_by_byte(fw):
    """A chunked request (head and body) written one byte per send."""
    mark = fw.mark()
    data = bytes(range(256)) * 3
    raw = request_bytes("POST", "/chunked-len",
                        headers=[("Transfer-Encoding", "chunked"),
                                 ("Content-Type", "application/octet-stream")],
                        body=chunked(data, [1, 100, 255, 7]))
    with fw.connection() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(raw)):
            sock.sendall(raw[i:i + 1])
        reply = read_until_closed(sock)
    resp = parse_response(reply.data)
    assert resp.status == 200, resp
    assert json.loads(resp.body) == digest(data)
    log_clean(fw, mark)


def test_streaming_response(fw):
    """GET /stream: the generator's parts arrive whole, chunked on HTTP/1.1."""
    mark = fw.mark()
    resp = raw_response(fw, "/stream")
    assert resp.status == 200, resp
    assert resp.body == STREAM_BODY
    log_clean(fw, mark)


def test_send_file_20mb_slow_client(fw):
    """GET /file (send_file / FileResponse / static_file / resp.stream of a
    20 MB file) read by a slow client: every byte arrives, hash equal."""
    mark = fw.mark()
    resp, length, data = slow_get(fw, "/file")
    assert resp.status == 200, resp
    assert length == BIG_FILE_SIZE
    assert len(data) == BIG_FILE_SIZE, "received %d of %d bytes" % (len(data), BIG_FILE_SIZE)
    assert hashlib.sha256(data).hexdigest() == fw.files["big_sha"]
    log_clean(fw, mark)


def test_whitenoise_static_8mb_slow_client(fw):
    """GET /static/big.bin through WhiteNoise read by a slow client."""
    mark = fw.mark()
    resp, length, data = slow_get(fw, "/static/big.bin")
    assert resp.status == 200, resp
    assert length == STATIC_FILE_SIZE
    assert len(data) == STATIC_FILE_SIZE, "received %d of %d bytes" % (len(data), STATIC_FILE_SIZE)
    assert hashlib.sha256(data).hexdigest() == fw.files["static_sha"]
    log_clean(fw, mark)


def test_view_raises_500_traceback_logged(fw):
    """GET /raise: 500, and the traceback with the exception's message in
    the error log (the framework logs it to wsgi.errors or stderr); the
    connection is closed as the request asked."""
    mark = fw.mark()
    reply = fw.raw(request_bytes("GET", "/raise"), timeout=3)
    resp = parse_response(reply.data)
    assert resp.status == 500, resp
    # The client asked for Connection: close; an error answer is no reason
    # to hold the connection open (the 30 s keep-alive) instead.
    assert reply.closed, "connection left open after a 500 to Connection: close"
    fw.stderr.wait_for(boom_message(fw.framework), start=mark)
    fw.stderr.wait_for(r"Traceback \(most recent call last\)", start=mark)
    log_clean(fw, mark)


def test_header_latin1(fw):
    """X-Name: café arrives as the latin-1 bytes of the app's str."""
    mark = fw.mark()
    resp = raw_response(fw, "/hdr-latin1")
    assert resp.status == 200, resp
    assert resp.header("x-name").encode("latin-1") == LATIN1_WIRE[fw.framework]
    log_clean(fw, mark)


def test_header_not_latin1(fw):
    """X-Price: 5 €: a value latin-1 cannot encode is never sent: 500 and an
    error logged. (Django and Bottle encode it themselves; see EURO_WIRE.)"""
    mark = fw.mark()
    reply = fw.raw(request_bytes("GET", "/hdr-euro"))
    resp = parse_response(reply.data)
    expected = EURO_WIRE[fw.framework]
    if expected is None:
        assert resp.status == 500, resp
        assert resp.header("x-price") is None, resp
        assert b"\xe2\x82\xac" not in reply.data and b"euro" not in resp.body, reply
        fw.stderr.wait_for(r"(?i)error", start=mark)
    else:
        assert resp.status == 200, resp
        assert resp.header("x-price").encode("latin-1") == expected
    log_clean(fw, mark)


def test_app_server_and_date(fw):
    """The app's own Server and Date: exactly one of each, the app's values."""
    mark = fw.mark()
    resp = raw_response(fw, "/server-date")
    assert resp.status == 200, resp
    assert resp.all("server") == [APP_SERVER], resp
    assert resp.all("date") == [APP_DATE], resp
    log_clean(fw, mark)


def test_connection_close_from_app(fw):
    """The app sets Connection: close on a keep-alive request: the response
    says so and the server closes the connection promptly (well before the
    30 s keep-alive)."""
    mark = fw.mark()
    with fw.connection() as sock:
        sock.sendall(request_bytes("GET", "/close", close=False))
        started = time.monotonic()
        reply = read_until_closed(sock, timeout=5)
    resp = parse_response(reply.data)
    assert resp.status == 200, resp
    assert resp.body == b"closing"
    assert [v.lower() for v in resp.all("connection")] == ["close"], resp
    assert reply.closed, "connection still open %.1fs after Connection: close" % (
        time.monotonic() - started)
    log_clean(fw, mark)


def test_secure_proxy_ssl_header(fw):
    """X-Forwarded-Proto: https from 127.0.0.1 (trusted by default):
    wsgi.url_scheme is https and the framework calls the request secure
    (Django through SECURE_PROXY_SSL_HEADER); without it, neither."""
    mark = fw.mark()
    resp = raw_response(fw, "/secure", headers=[("X-Forwarded-Proto", "https")])
    assert resp.status == 200, resp
    assert json.loads(resp.body) == {"secure": True, "url_scheme": "https"}
    resp = raw_response(fw, "/secure")
    assert json.loads(resp.body) == {"secure": False, "url_scheme": "http"}
    log_clean(fw, mark)


def test_whole_log_clean_and_server_alive(fw):
    """Last for each server: still serving, no worker died, and no validator
    complaint anywhere in its log."""
    status, _, body = fw.get("/")
    assert (status, body) == (200, b"ok")
    assert fw.proc.poll() is None
    assert len(fw.booted_pids()) == 1, "a worker was replaced:\n" + fw.log()
    log_clean(fw, 0)
