"""Responses: framing (chunked, Content-Length, HEAD, bodiless statuses),
streaming, write(), wsgi.file_wrapper, and close() of the iterable."""
import hashlib
import os
import time
import uuid
from urllib.parse import quote

import pytest

from harness import decode_chunked, parse_head, parse_response, read_head, wait_for_file_line


def raw_get(server, target, method="GET"):
    request = "%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (method, target)
    reply = server.raw(request.encode())
    assert reply.closed, reply
    return reply


def test_chunked_response_without_length(wsgi_server):
    """No Content-Length from the app on HTTP/1.1: Transfer-Encoding:
    chunked, and the chunks decode to the app's bytes."""
    reply = raw_get(wsgi_server, "/chunked")
    head, _, after = reply.data.partition(b"\r\n\r\n")
    _, status, headers = parse_head(head)
    assert status == 200
    assert ("transfer-encoding", "chunked") in headers
    assert not any(name == "content-length" for name, _ in headers)
    body, rest = decode_chunked(after)
    assert body == b"a" * 10 + b"b" * 300 + b"c"
    assert rest == b""


def test_content_length_honoured(wsgi_server):
    """A Content-Length from the app is sent as is, with exactly that many
    body bytes and no chunked encoding."""
    response = parse_response(raw_get(wsgi_server, "/length").data)
    assert response.status == 200
    assert response.header("content-length") == "23"
    assert response.header("transfer-encoding") is None
    assert response.body == b"exactly 23 bytes long.\n"
    assert response.rest == b""


@pytest.mark.parametrize("target", ["/length", "/chunked"])
def test_head_has_headers_but_no_body(wsgi_server, target):
    """HEAD gets the status and headers of GET and not a single body byte
    (not even a chunked terminator)."""
    reply = raw_get(wsgi_server, target, method="HEAD")
    head, _, after = reply.data.partition(b"\r\n\r\n")
    _, status, headers = parse_head(head)
    assert status == 200
    if target == "/length":
        assert ("content-length", "23") in headers
    assert after == b""


@pytest.mark.parametrize("code", ["204", "304"])
def test_bodiless_status_has_no_body(wsgi_server, code):
    """204 and 304 responses carry no body and no chunked framing."""
    reply = raw_get(wsgi_server, "/status?code=" + code)
    head, _, after = reply.data.partition(b"\r\n\r\n")
    _, status, headers = parse_head(head)
    assert status == int(code)
    assert ("x-status", code) in headers
    assert not any(name == "transfer-encoding" for name, _ in headers)
    assert after == b""


def test_streaming_generator(wsgi_server):
    """A generator's 5 parts (0.1 s apart) all arrive, in order, and
    progressively: the first before the last is produced."""
    arrivals = []
    with wsgi_server.connection() as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head, data = read_head(sock)
        assert b" 200 " in head.split(b"\r\n")[0]
        arrivals.append((time.monotonic(), data))
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            arrivals.append((time.monotonic(), chunk))
    body, rest = decode_chunked(b"".join(c for _, c in arrivals))
    assert body == b"part0;part1;part2;part3;part4;"
    first_part_at = next(t for t, c in arrivals if b"part0" in c)
    last_part_at = next(t for t, c in arrivals if b"part4" in c)
    assert last_part_at - first_part_at >= 0.25, "parts were buffered, not streamed"


def test_write_callable(wsgi_server):
    """Bytes given to start_response's write() come before the iterable's."""
    status, _, body = wsgi_server.get("/write")
    assert status == 200
    assert body == b"from-write;from-iterable"


def test_file_wrapper_real_file(wsgi_server, tmp_path):
    """wsgi.file_wrapper over a 2 MB file sends it identically."""
    path = tmp_path / "big.bin"
    data = os.urandom(2 << 20)
    path.write_bytes(data)
    status, _, body = wsgi_server.get("/filewrapper?path=" + quote(str(path)), timeout=20)
    assert status == 200
    assert len(body) == len(data)
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_file_wrapper_bytesio_falls_back_to_iteration(wsgi_server):
    """wsgi.file_wrapper over io.BytesIO (no fileno) is iterated: the body
    is the buffer's content."""
    status, _, body = wsgi_server.get("/bytesio")
    assert status == 200
    assert body == bytes(range(256)) * 1000


def test_close_called_after_normal_response(wsgi_server, close_log):
    """close() of the returned iterable is called after it was sent."""
    tag = uuid.uuid4().hex
    status, _, body = wsgi_server.get("/close?mode=ok&tag=" + tag)
    assert (status, body) == (200, b"one;two;")
    assert wait_for_file_line(close_log, tag), "close() was not called"


def test_close_called_when_client_disconnects(wsgi_server, close_log):
    """close() is called when the client goes away mid-stream, and soon
    (the worker does not run the 10 s stream to its end)."""
    tag = uuid.uuid4().hex
    with wsgi_server.connection() as sock:
        sock.sendall(("GET /close?mode=stream&tag=%s HTTP/1.1\r\nHost: x\r\n\r\n" % tag).encode())
        head, _ = read_head(sock)
        assert b" 200 " in head.split(b"\r\n")[0]
    assert wait_for_file_line(close_log, tag, timeout=5), "close() was not called"
    status, _, _ = wsgi_server.get("/pid")
    assert status == 200


def test_close_called_when_iterable_raises(wsgi_server, close_log):
    """close() is called when iterating the app's result raises."""
    tag = uuid.uuid4().hex
    reply = raw_get(wsgi_server, "/close?mode=raise&tag=" + tag)
    assert reply.data.startswith(b"HTTP/1.1 200 "), reply
    assert wait_for_file_line(close_log, tag), "close() was not called"
