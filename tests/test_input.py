"""wsgi.input: the file-like methods, body boundaries, large, chunked and
100-continue bodies."""
import hashlib
import json
import os

import pytest

from harness import parse_response, read_head, read_until_closed

BODY = b"line1\nline2\nline3\nrest"


def run_ops(server, ops, body=BODY, trailing=b""):
    """POSTs `body` (Content-Length framed, then `trailing` bytes on the same
    connection) to /input?ops=...; returns the JSON results."""
    head = ("POST /input?ops=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (ops, len(body))).encode()
    response = parse_response(server.raw(head + body + trailing).data)
    assert response.status == 200, response
    return json.loads(response.body)


@pytest.mark.parametrize("ops, expected", [
    ("read3.read4", ["lin", "e1\nl"]),
    ("read", ["line1\nline2\nline3\nrest"]),
    ("read6.read.read", ["line1\n", "line2\nline3\nrest", ""]),
    ("readline.readline.readline.readline.readline", ["line1\n", "line2\n", "line3\n", "rest", ""]),
    ("readline3.readline10.readline0", ["lin", "e1\n", ""]),
    ("readlines", [["line1\n", "line2\n", "line3\n", "rest"]]),
    ("iter", [["line1\n", "line2\n", "line3\n", "rest"]]),
    ("read2.iter", ["li", ["ne1\n", "line2\n", "line3\n", "rest"]]),
], ids=["read(n)", "read()", "read-after-eof", "readline()", "readline(n)",
        "readlines()", "iteration", "read-then-iterate"])
def test_input_methods(wsgi_server, ops, expected):
    """read(n), read(), readline(), readline(n), readlines() and iteration
    return the body's bytes as the file protocol says, b'' at the end."""
    assert run_ops(wsgi_server, ops) == expected


@pytest.mark.parametrize("ops", ["read", "readline.readline.readline.readline.readline", "readlines", "iter"])
def test_input_never_reads_past_body(wsgi_server, ops):
    """A pipelined second request after the body is not part of wsgi.input,
    whatever method reads it."""
    second = b"GET /leaked HTTP/1.1\r\nHost: x\r\n\r\n"
    results = run_ops(wsgi_server, ops, body=b"abc\n12", trailing=second)
    flat = "".join(r if isinstance(r, str) else "".join(r) for r in results)
    assert flat == "abc\n12"


def test_large_post_echoed(wsgi_server):
    """A 1 MB random body comes back byte for byte."""
    data = os.urandom(1 << 20)
    status, headers, body = wsgi_server.request(
        "POST", "/echo", body=data, headers={"Content-Type": "application/octet-stream"},
        timeout=20)
    assert status == 200
    assert len(body) == len(data)
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()


def test_chunked_request_body_echoed(wsgi_server):
    """A chunked request body sent in several chunks (and several writes)
    reaches the app de-chunked."""
    parts = [b"a", b"0123456789abcdef", os.urandom(5000), b"tail\r\n"]
    with wsgi_server.connection() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in parts:
            sock.sendall(b"%X\r\n%s\r\n" % (len(part), part))
        sock.sendall(b"0\r\n\r\n")
        reply = read_until_closed(sock)
    response = parse_response(reply.data)
    assert response.status == 200, response
    assert response.body == b"".join(parts)


def test_expect_100_continue(wsgi_server):
    """`Expect: 100-continue` gets an interim `HTTP/1.1 100 Continue` before
    the client sends the body; then the final response echoes the body."""
    with wsgi_server.connection() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        interim, extra = read_head(sock)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        assert extra == b""
        sock.sendall(b"hello world")
        reply = read_until_closed(sock)
    response = parse_response(reply.data)
    assert response.status == 200, response
    assert response.body == b"hello world"
