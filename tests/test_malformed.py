"""Malformed and over-limit requests over raw sockets: the exact error
status, the connection closed right after it, nothing after the bad request
answered as a second request (no smuggling), and the server still serving."""
import re
import socket
import time

import pytest

from harness import parse_response, read_until_closed, server_fixture

limited = server_fixture("wsgiapp:application", args=[
    "--limit-request-line", "100",
    "--limit-request-fields", "5",
    "--limit-request-field-size", "100",
])

# Sent right after each bad request on the same connection: it must never
# be answered.
SMUGGLED = b"GET /pid HTTP/1.1\r\nHost: smuggled\r\n\r\n"

BAD_REQUESTS = {
    "content-length-and-transfer-encoding": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    "two-content-lengths": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", {400}),
    "content-length-list": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1,1\r\n\r\nh", {400}),
    "content-length-plus-sign": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", {400}),
    "duplicate-host": (
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {400}),
    "transfer-encoding-not-chunked": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello", {400}),
    "chunked-on-http-1.0": (
        b"POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        {400}),
    "whitespace-before-colon": (
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", {400}),
    "bare-lf-line-endings": (
        b"GET / HTTP/1.1\nHost: x\n\n", {400}),
    "nul-in-header-value": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", {400}),
    "cr-in-header-value": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", {400}),
    "invalid-method-char": (
        b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    "lowercase-method": (
        b"get / HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    "version-1.2": (
        b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", {400, 505}),
    "version-2.0": (
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", {400, 505}),
    "non-ascii-target": (
        b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    "asterisk-target-with-get": (
        b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    "authority-form-with-get": (
        b"GET example.com:80 HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    "bad-chunk-size": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        {400}),
}

OVER_LIMIT = {
    "request-line-over-limit": (
        b"GET /" + b"a" * 120 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "too-many-header-fields": (
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(6)) + b"\r\n",
        431),
    "header-field-over-limit": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"v" * 120 + b"\r\n\r\n", 431),
}


def exchange(server, request):
    """Sends `request` + SMUGGLED on one connection; returns the first
    response after checking it is the only one and the connection closed."""
    reply = server.raw(request + SMUGGLED)
    assert reply.closed, "connection left open after the error: %r" % reply
    response = parse_response(reply.data)
    assert response.rest == b"", "bytes after the bad request were answered: %r" % response.rest
    assert len(re.findall(rb"HTTP/1\.[01] \d{3} ", reply.data)) == 1, reply
    return response


def assert_still_serving(server):
    status, _, _ = server.get("/pid")
    assert status == 200


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_malformed_request_rejected(wsgi_server, name):
    """Each malformed request gets its exact error status, the connection is
    closed, the pipelined request after it is never answered, and the server
    keeps serving."""
    request, statuses = BAD_REQUESTS[name]
    response = exchange(wsgi_server, request)
    assert response.status in statuses, response
    assert_still_serving(wsgi_server)


@pytest.mark.parametrize("name", list(OVER_LIMIT))
def test_request_over_limit_rejected(limited, name):
    """--limit-request-line 100 -> 414; more than --limit-request-fields 5
    headers -> 431; a header over --limit-request-field-size 100 -> 431.
    The connection is closed and the server keeps serving."""
    request, expected = OVER_LIMIT[name]
    response = exchange(limited, request)
    assert response.status == expected, response
    assert_still_serving(limited)


def test_request_within_limits_served(limited):
    """The limits are not off by one: a request with exactly 5 fields and
    short lines is served."""
    request = b"GET /pid HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(4)) + b"\r\n"
    response = parse_response(limited.raw(request).data)
    assert response.status == 200, response


def test_slow_client_does_not_block_others(spawn):
    """On a 1-worker server, a client that sent half a request head and
    stalls does not delay a normal request, and is still open afterwards."""
    server = spawn.start("wsgiapp:application")
    with server.connection() as slow:
        slow.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        status, _, _ = server.get("/pid", timeout=5)
        elapsed = time.monotonic() - started
        assert status == 200
        assert elapsed < 1.0, "normal request took %.2fs behind a slow client" % elapsed
        slow.settimeout(0.2)
        with pytest.raises(socket.timeout):
            data = slow.recv(1)
            pytest.fail("slow connection answered or closed early: %r" % data)
        slow.sendall(b"\r\n")
        response = parse_response(read_until_closed(slow).data)
        assert response.status == 200, response
