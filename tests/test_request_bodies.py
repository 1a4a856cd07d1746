"""Request bodies end to end on every worker class: every byte of a valid
body reaches the app, whatever its framing; invalid framing is a 400 when
the app reads it before answering, and a read error (never b'') after.

Each corpus case is sent whole and one byte at a time, and checks both the
status and what tests/apps/bodyapp.py says it read (its wsgi.errors line).
The rules are gunicorn 27's (gunicorn/http/body.py, message.py); where
ferricorn differs, the test says so.
"""
import hashlib
import json
import select
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from harness import IO_TIMEOUT, ServerPool, parse_response, read_until_closed

CLASSES = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "4"],
    "async": ["-k", "async"],
}
KEEPALIVE_CLASSES = ("gthread", "async")
# Short, so a stalled body is answered quickly.
BODY_TIMEOUT = 1

SAW_PREFIX = "bodyapp-saw "


@pytest.fixture(scope="module", params=list(CLASSES))
def body_server(request, ferricorn_bin):
    with ServerPool(ferricorn_bin) as pool:
        server = pool.start("bodyapp:application", args=[
            *CLASSES[request.param], "--header-timeout", str(BODY_TIMEOUT),
            "--body-timeout", str(BODY_TIMEOUT)])
        server.worker_class = request.param
        yield server


def new_tag():
    return uuid.uuid4().hex[:12]


def send(server, data, bytewise=False, half_close=False, timeout=IO_TIMEOUT):
    """Sends `data` (whole, or one byte per send with Nagle off) and reads
    until the server closes. Bytewise sending stops early once the server
    has answered, so the rest does not reset the connection. Returns the
    bytes received."""
    sock = server.connection(timeout)
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if bytewise:
                for i in range(len(data)):
                    sock.sendall(data[i:i + 1])
                    if select.select([sock], [], [], 0)[0]:
                        break
            else:
                sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = read_until_closed(sock, timeout)
    assert reply.closed, "the server did not close the connection: %r" % reply
    return reply.data


def saw(server, tag, start=0):
    """What the app reported reading for `tag`."""
    match = server.stderr.wait_for(SAW_PREFIX + r"(\{.*\"tag\": \"%s\".*\})" % tag, start=start)[0]
    return json.loads(match.group(1))


def app_lines(server, tag, start=0):
    return [line for line in server.stderr.lines[start:]
            if line.find(SAW_PREFIX) >= 0 and ('"tag": "%s"' % tag) in line]


def chunked_request(tag, body, te="chunked", path="/len", close=True, how="read"):
    head = "POST %s?tag=%s&how=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n" % (
        path, tag, how, te)
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode() + body


def sha(data):
    return hashlib.sha256(data).hexdigest()


HELLO = b"5\r\nhello\r\n0\r\n\r\n"

# name -> chunked body that must be refused with 400 (gunicorn 27 agrees on
# each: its InvalidChunkSize, InvalidChunkExtension, ChunkMissingTerminator
# or InvalidHeaderName for trailers).
INVALID = {
    "underscore-in-size": b"5_0\r\nhello\r\n0\r\n\r\n",
    "plus-sign": b"+5\r\nhello\r\n0\r\n\r\n",
    "minus-sign": b"-5\r\nhello\r\n0\r\n\r\n",
    "space-before-size": b" 5\r\nhello\r\n0\r\n\r\n",
    "tab-before-size": b"\t5\r\nhello\r\n0\r\n\r\n",
    "space-after-size": b"5 \r\nhello\r\n0\r\n\r\n",
    "space-after-extension": b"5;a=b \r\nhello\r\n0\r\n\r\n",
    "bare-cr-in-extension": b"5;a\rb\r\nhello\r\n0\r\n\r\n",
    "bare-cr-in-quoted-extension": b"5;a=\"b\rc\"\r\nhello\r\n0\r\n\r\n",
    "no-size": b"\r\nhello\r\n0\r\n\r\n",
    "extension-without-size": b";a=b\r\nhello\r\n0\r\n\r\n",
    "hex-prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
    "bare-lf-after-size": b"5\nhello\r\n0\r\n\r\n",
    "data-longer-than-size": b"5\r\nhelloXX\r\n0\r\n\r\n",
    "data-without-crlf": b"5\r\nhello0\r\n\r\n",
    "final-crlf-missing-before-next": b"5\r\nhello\r\n0\r\nGET / HTTP/1.1\r\n\r\n",
    "trailer-content-length": b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n",
    "trailer-host": b"5\r\nhello\r\n0\r\nHost: evil\r\n\r\n",
    "trailer-transfer-encoding": b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
    "trailer-folded": b"5\r\nhello\r\n0\r\nX-A: b\r\n c\r\n\r\n",
    "trailer-no-colon": b"5\r\nhello\r\n0\r\nX-A\r\n\r\n",
}

# name -> (Transfer-Encoding, chunked body, what the app must read).
VALID = {
    "plain": ("chunked", HELLO, b"hello"),
    "quoted-extension": ("chunked", b"5;name=\"a \\\"quoted\\\" value\";x\r\nhello\r\n0;end=\"\"\r\n\r\n",
                         b"hello"),
    "space-before-extension": ("chunked", b"5 ;a = b\r\nhello\r\n0\r\n\r\n", b"hello"),
    "uppercase-hex": ("chunked", b"1A\r\n" + b"z" * 26 + b"\r\n0\r\n\r\n", b"z" * 26),
    "leading-zeros": ("chunked", b"0000000000000000000005\r\nhello\r\n000\r\n\r\n", b"hello"),
    "gzip-then-chunked": ("gzip, chunked", b"4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n", b"\x1f\x8b\x08\x00"),
    "identity-then-chunked": ("identity, chunked", HELLO, b"hello"),
    "mixed-case-chunked": ("Chunked", HELLO, b"hello"),
    "many-one-byte-chunks": ("chunked", b"".join(b"1\r\n%c\r\n" % c for c in b"0123456789" * 30)
                             + b"0\r\n\r\n", b"0123456789" * 30),
    "trailers": ("chunked", b"5\r\nhello\r\n0\r\nX-Checksum: 1\r\nX-Other: two words\r\n\r\n",
                 b"hello"),
    "binary-data": ("chunked", b"6\r\n\r\n\x00\xff0\n\r\n0\r\n\r\n", b"\r\n\x00\xff0\n"),
    "empty": ("chunked", b"0\r\n\r\n", b""),
}


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("name", list(VALID))
def test_valid_chunked_body_arrives_whole(body_server, name, bytewise):
    """Valid but unusual chunked forms deliver every byte to the app."""
    te, body, expected = VALID[name]
    tag = new_tag()
    start = body_server.mark()
    response = parse_response(send(body_server, chunked_request(tag, body, te), bytewise))
    assert response.status == 200, response
    seen = saw(body_server, tag, start)
    assert seen["error"] is None, seen
    assert (seen["len"], seen["sha256"]) == (len(expected), sha(expected)), seen
    assert json.loads(response.body) == seen


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_chunked_body_is_400(body_server, name, bytewise):
    """Invalid framing found while the app reads, before it answers: the
    client gets 400 and the connection closes; the app's read raised."""
    tag = new_tag()
    start = body_server.mark()
    data = send(body_server, chunked_request(tag, INVALID[name], close=False), bytewise)
    response = parse_response(data)
    assert response.status == 400, response
    assert response.header("Connection") == "close"
    assert response.rest == b"", "nothing after the 400: %r" % response.rest
    seen = saw(body_server, tag, start)
    assert seen["len"] is None and seen["error"].startswith("OSError: "), seen
    assert "invalid request body" in seen["error"], seen


def test_invalid_body_is_logged_as_an_invalid_request(body_server):
    """A body refused for its framing is logged at warning with the peer and
    the reason, as gunicorn logs its chunk errors."""
    start = body_server.mark()
    body = b"3\r\nabc\r\n5_\r\nhello\r\n0\r\n\r\n"
    response = parse_response(send(body_server, chunked_request(new_tag(), body)))
    assert response.status == 400, response
    body_server.stderr.wait_for(
        r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: .*invalid chunk size", start=start)


@pytest.mark.parametrize("how", ["read1", "readline"])
def test_invalid_body_is_400_however_read(body_server, how):
    """read(1) loops and readline() see the same error as read()."""
    tag = new_tag()
    start = body_server.mark()
    body = b"3\r\nabc\r\n5_\r\nhello\r\n0\r\n\r\n"
    response = parse_response(send(body_server, chunked_request(tag, body, close=False, how=how)))
    assert response.status == 400, response
    seen = saw(body_server, tag, start)
    assert seen["error"] and "invalid chunk size" in seen["error"], seen


def test_invalid_body_is_400_even_if_the_app_catches_the_error(body_server):
    """An app that swallows the read error and answers 200 does not get its
    answer out: the client learns its request was bad."""
    tag = new_tag()
    start = body_server.mark()
    data = send(body_server, chunked_request(tag, INVALID["trailer-host"], path="/caught"))
    response = parse_response(data)
    assert response.status == 400, response
    assert b"forbidden field in trailers" in response.body
    assert saw(body_server, tag, start)["error"], "the app's read raised"


def test_invalid_body_after_response_started_raises(body_server):
    """Once the response is out, the read raises (an OSError, also on a
    second try), the response ends and the connection closes."""
    tag = new_tag()
    start = body_server.mark()
    body = b"5\r\nhello\r\nzz\r\n0\r\n\r\n"
    data = send(body_server, chunked_request(tag, body, path="/started", close=False))
    response = parse_response(data)
    assert response.status == 200, response
    lines = response.body.split(b"\n")
    assert lines[0] == b"started"
    seen = json.loads(lines[1])
    assert seen["len"] is None and seen["error"].startswith("OSError: "), seen
    assert lines[2] == b"again: OSError", "a second read raises too, not b''"
    assert saw(body_server, tag, start) == seen


def test_trailers_then_pipelined_request(body_server):
    """A chunked body with trailers, then a second request on the same
    connection: the body is whole; keep-alive classes answer the second."""
    first, second = new_tag(), new_tag()
    start = body_server.mark()
    data = (chunked_request(first, b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", close=False)
            + b"POST /len?tag=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
              b"Connection: close\r\n\r\nxy" % second.encode())
    reply = send(body_server, data)
    response = parse_response(reply)
    assert response.status == 200, response
    assert saw(body_server, first, start)["len"] == 3
    if body_server.worker_class in KEEPALIVE_CLASSES:
        following = parse_response(response.rest)
        assert following.status == 200, following
        assert saw(body_server, second, start)["sha256"] == sha(b"xy")
    else:
        # sync closes after every response, as gunicorn's sync worker.
        assert response.header("Connection") == "close"


@pytest.mark.parametrize("length, sent", [(100, 10), (3 << 20, 1000)],
                         ids=["small", "larger-than-preread"])
def test_short_content_length_then_half_close_is_400(body_server, length, sent):
    """Content-Length promises more than arrives before the client
    half-closes: a 400, never silence. (gunicorn hands the app the short
    body and answers 200; ferricorn refuses the truncated request.)"""
    tag = new_tag()
    start = body_server.mark()
    head = ("POST /len?tag=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (tag, length)).encode()
    response = parse_response(send(body_server, head + b"x" * sent, half_close=True))
    assert response.status == 400, response
    assert b"closed the connection" in response.body
    if length <= 1 << 20:
        # Read ahead on the event loop (every class): refused before the
        # app is called.
        assert app_lines(body_server, tag, start) == []
    else:
        assert "closed the connection" in saw(body_server, tag, start)["error"]


def test_chunked_body_cut_by_half_close_is_400(body_server):
    """A chunked body the client stops in the middle of (or before its
    final CRLF) and half-closes: 400. Small, it is read ahead on the event
    loop and refused before the app is called; past the 1 MiB read-ahead
    the app reads it and its read raises."""
    big = b"100000\r\n" + b"z" * 0x100000 + b"\r\n" + b"5\r\nhel"
    for body in (b"5\r\nhel", b"5\r\nhello\r\n0\r\n", big):
        tag = new_tag()
        start = body_server.mark()
        response = parse_response(send(body_server, chunked_request(tag, body), half_close=True))
        assert response.status == 400, response
        if body is big:
            assert "inside a chunked body" in saw(body_server, tag, start)["error"]
        else:
            assert b"inside a chunked body" in response.body
            assert app_lines(body_server, tag, start) == []


def test_stalled_body_is_408_after_the_timeout(body_server):
    """A client that stops sending in the middle of a (read-ahead) body is
    answered 408 once --header-timeout passes, not left hanging."""
    tag = new_tag()
    head = ("POST /len?tag=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" % tag).encode()
    started = time.monotonic()
    response = parse_response(send(body_server, head + b"x" * 10, timeout=BODY_TIMEOUT + 10))
    assert response.status == 408, response
    assert b"timed out reading the request body" in response.body
    assert time.monotonic() - started >= BODY_TIMEOUT * 0.9


def test_input_terminated_is_set(body_server):
    """wsgi.input_terminated is True (as gunicorn sets it): the app may read
    to b'' whatever the framing."""
    tag = new_tag()
    start = body_server.mark()
    body = b"a\r\n0123456789\r\n0\r\n\r\n"
    response = parse_response(send(body_server, chunked_request(tag, body, how="read")))
    assert response.status == 200
    assert saw(body_server, tag, start)["len"] == 10


@pytest.fixture(scope="module", params=list(CLASSES))
def flask_server(request, ferricorn_bin):
    with ServerPool(ferricorn_bin) as pool:
        yield pool.start("bodyapp:flask_app", args=CLASSES[request.param])


def test_flask_get_data_reads_chunked_body(flask_server):
    """Flask's request.get_data() sees a chunked upload (Werkzeug relies on
    wsgi.input_terminated when there is no Content-Length)."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b"hello", b" ", b"world"))
    data = (b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + body + b"0\r\n\r\n")
    response = parse_response(send(flask_server, data))
    assert (response.status, response.body) == (200, b"11")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_chunked_upload(flask_server):
    """printf 'hello world' | curl -H 'Transfer-Encoding: chunked'
    --data-binary @- : the app reads 11 bytes."""
    out = subprocess.run(
        ["curl", "-s", "-S", "--max-time", str(IO_TIMEOUT), "-H", "Transfer-Encoding: chunked",
         "--data-binary", "@-", "http://127.0.0.1:%d/up" % flask_server.port],
        input=b"hello world", capture_output=True, timeout=IO_TIMEOUT + 5)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"11"
