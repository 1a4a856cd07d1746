"""Application errors: exceptions, invalid start_response calls, sys.exit,
hop-by-hop headers. The server answers 500 (or closes) and keeps serving."""
import time
import uuid
from urllib.parse import quote

import http.client
import pytest

from harness import parse_response


def served_pid(server):
    status, _, body = server.get("/pid")
    assert status == 200
    return int(body)


def test_exception_gives_500_and_traceback(wsgi_server):
    """An exception in the app: 500, and its traceback with the exception
    text in the error log."""
    tag = uuid.uuid4().hex
    start = wsgi_server.mark()
    status, _, _ = wsgi_server.get("/raise?tag=" + tag)
    assert status == 500
    wsgi_server.stderr.wait_for(r"Traceback \(most recent call last\)", start=start)
    wsgi_server.stderr.wait_for("ValueError: boom from the app " + tag, start=start)


def test_worker_serves_after_exception(wsgi_server):
    """After a request whose app raised, the same worker answers the next."""
    before = served_pid(wsgi_server)
    status, _, _ = wsgi_server.get("/raise")
    assert status == 500
    assert served_pid(wsgi_server) == before


@pytest.mark.parametrize("status_line", ["200OK", "abc"])
def test_bad_status_string_gives_500(wsgi_server, status_line):
    """start_response with a malformed status string: 500."""
    status, _, body = wsgi_server.get("/badstatus?s=" + quote(status_line))
    assert status == 500
    assert b"should not be sent" not in body


@pytest.mark.parametrize("kind", ["newline", "nonstr"])
def test_bad_header_gives_500(wsgi_server, kind):
    """A header value with '\\n' or a non-str header name: 500, and
    nothing of the bad header reaches the client."""
    reply = wsgi_server.raw(("GET /badheader?kind=%s HTTP/1.1\r\nHost: x\r\n\r\n" % kind).encode())
    response = parse_response(reply.data)
    assert response.status == 500, response
    assert response.all("injected") == [] and response.all("x-bad") == []
    assert b"should not be sent" not in reply.data


def test_sys_exit_does_not_hang_the_server(wsgi_server):
    """sys.exit(3) in the app: the client gets a 500 or a closed
    connection, and the server answers again within 5 seconds."""
    reply = wsgi_server.raw(b"GET /exit HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.closed, reply
    if reply.data:
        assert parse_response(reply.data).status == 500, reply
    deadline = time.monotonic() + 5
    while True:
        try:
            status, _, _ = wsgi_server.get("/pid", timeout=1)
            assert status == 200
            break
        except (OSError, http.client.HTTPException):
            assert time.monotonic() < deadline, "no answer within 5 s after sys.exit"
            time.sleep(0.05)


def test_start_response_twice_gives_500(wsgi_server):
    """start_response called a second time without exc_info: 500."""
    status, _, body = wsgi_server.get("/twice")
    assert status == 500
    assert b"should not be sent" not in body


def test_hop_by_hop_connection_not_passed_through(wsgi_server):
    """An app's `Connection: keep-alive` does not reach the client (the
    sync worker closes every connection, and says so)."""
    reply = wsgi_server.raw(b"GET /hop?h=connection HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.closed, reply
    response = parse_response(reply.data)
    if response.status != 500:
        assert response.status == 200, response
        assert [v.lower() for v in response.all("connection")] == ["close"]
        assert response.body == b"hop-body"


def test_hop_by_hop_transfer_encoding_not_passed_through(wsgi_server):
    """An app's `Transfer-Encoding: chunked` over a plain body is not sent as
    given: either refused (500) or the body is framed correctly by the
    server (a single chunked coding that decodes to the app's bytes)."""
    reply = wsgi_server.raw(b"GET /hop?h=te HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.closed, reply
    response = parse_response(reply.data)
    if response.status != 500:
        assert response.status == 200, response
        assert len(response.all("transfer-encoding")) <= 1, response
        assert response.body == b"hop-body"
        assert response.rest == b""
