"""ASGI 3 on `-k async`: detection, scope, request and response streaming,
disconnects, misbehaving apps, lifespan, root_path, concurrency, with a raw
ASGI app (apps/asgiraw.py), FastAPI and Starlette.

Real servers on loopback, real clients (http.client, raw sockets, httpx,
asyncio streams); every wait is bounded.
"""
import asyncio
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import time

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from test_worker_classes import TlsServer
from harness import (IO_TIMEOUT, Server, h2_get, parse_response, read_head,
                     run_ferricorn)


def start(spawn, app, *args, env=None, workers=1, server_cls=Server):
    server = server_cls(spawn.binary, app, args=["-w", str(workers), "-k", "async", *args],
                        workers=workers, env=env)
    spawn.servers.append(server)
    return server.start()


@pytest.fixture
def events(tmp_path):
    """The file apps/asgiraw.py notes what it saw in."""
    return tmp_path / "events.log"


def wait_for_event(path, text, timeout=IO_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError("%r never noted; events: %r" % (
        text, path.read_text() if path.exists() else ""))


def scope_of(server, path, headers=None):
    status, _, body = server.get(path, headers=headers)
    assert status == 200, body
    return json.loads(body)


# -- detection and settings ------------------------------------------------

def test_fastapi_hello_is_served_as_asgi(spawn):
    """The issue's case: a FastAPI app on -k async answers, not 500."""
    server = start(spawn, "asgi_fastapi:app")
    status, headers, body = server.get("/")
    assert status == 200, body
    assert json.loads(body) == {"hello": "world"}
    assert headers["content-type"] == "application/json"
    status, _, body = server.get("/items/42?q=x")
    assert (status, json.loads(body)) == (200, {"item_id": 42, "q": "x"})


@pytest.mark.parametrize("spelling", ["asgi", "uvicorn.workers.UvicornWorker"])
def test_gunicorn_and_uvicorn_worker_names_mean_async_asgi(spawn, spelling):
    server = Server(spawn.binary, "asgi_starlette:app", args=["-k", spelling])
    spawn.servers.append(server)
    server.start()
    status, _, body = server.get("/")
    assert (status, body) == (200, b"home")
    assert "Using worker: async" in server.log()


@pytest.mark.parametrize("kind", [["-k", "sync"], ["-k", "gthread", "--threads", "2"]])
def test_asgi_app_on_a_thread_class_fails_at_startup(ferricorn_bin, kind):
    proc = run_ferricorn(ferricorn_bin, ["-b", "127.0.0.1:0", *kind, "asgi_fastapi:app"])
    assert proc.returncode == 4, proc.stderr
    assert "is an ASGI application" in proc.stderr
    assert "use -k async" in proc.stderr


def test_legacy_double_callable_with_interface_asgi(spawn):
    server = start(spawn, "asgi_legacy:app", "--interface", "asgi")
    status, _, body = server.get("/")
    assert (status, body) == (200, b"asgi2")


def test_wsgi_app_stays_wsgi_on_async(spawn):
    server = start(spawn, "hello:app")
    status, _, _ = server.get("/")
    assert status == 200


def test_bad_interface_value_is_refused(ferricorn_bin):
    proc = run_ferricorn(ferricorn_bin, ["--interface", "rsgi", "asgiraw:app"])
    assert proc.returncode != 0
    assert "interface" in proc.stderr and "auto, wsgi, asgi" in proc.stderr


@pytest.mark.parametrize("choice,module", [("auto", "uvloop"), ("asyncio", "asyncio"),
                                           ("uvloop", "uvloop")])
def test_asgi_loop_choice(spawn, choice, module):
    server = start(spawn, "asgiraw:app", "--asgi-loop", choice)
    status, _, body = server.get("/loop")
    assert status == 200
    assert body.decode().split(".")[0] == module


# -- scope -------------------------------------------------------------------

def test_scope_contents(spawn):
    server = start(spawn, "asgiraw:app")
    scope = scope_of(server, "/a%20b/%C3%A9/scope?x=%20&y=1", headers={"X-Custom": "Val"})
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/\u00e9/scope"
    assert scope["raw_path"] == {"bytes": "/a%20b/%C3%A9/scope"}
    assert scope["query_string"] == {"bytes": "x=%20&y=1"}
    assert scope["root_path"] == ""
    names = [h[0]["bytes"] for h in scope["headers"]]
    assert "x-custom" in names and all(n == n.lower() for n in names)
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ["127.0.0.1", server.port]
    # Usable on a plain HTTP/1.1 connection whose client sent no TE: trailers.
    assert scope["extensions"] == {"http.response.pathsend": {},
                                   "http.response.informational": {},
                                   "http.response.early_hint": {}}
    assert scope["state"] == {"started": "yes"}


def test_http10_version(spawn):
    server = start(spawn, "asgiraw:app")
    reply = server.raw(b"GET /scope HTTP/1.0\r\n\r\n")
    resp = parse_response(reply.data)
    assert json.loads(resp.body)["http_version"] == "1.0"


def test_root_path_is_prefixed_into_path(spawn):
    server = start(spawn, "asgiraw:app", "--root-path", "/mnt")
    scope = scope_of(server, "/a%20b/scope")
    assert scope["root_path"] == "/mnt"
    assert scope["path"] == "/mnt/a b/scope"
    assert scope["raw_path"] == {"bytes": "/mnt/a%20b/scope"}


def test_starlette_routes_under_root_path(spawn):
    server = start(spawn, "asgi_starlette:app", "--root-path", "/api")
    status, _, body = server.get("/where")
    assert status == 200, body
    info = json.loads(body)
    assert info["root_path"] == "/api"
    assert info["url"].endswith("/api/where"), info
    status, _, body = server.get("/sub/where")
    assert status == 200, body
    info = json.loads(body)
    assert info["root_path"] == "/api/sub"  # Starlette's Mount extends it
    assert info["url"].endswith("/api/sub/where"), info


# -- bodies ------------------------------------------------------------------

def test_echo_10mb_in_pieces(spawn):
    server = start(spawn, "asgiraw:app")
    body = os.urandom(1024) * (10 * 1024)
    with httpx.Client(timeout=30) as client:
        resp = client.post("http://127.0.0.1:%d/echo" % server.port, content=body)
    assert resp.status_code == 200
    assert resp.content == body
    assert int(resp.headers["x-pieces"]) > 1
    assert resp.headers["transfer-encoding"] == "chunked"


def test_chunked_request_body(spawn):
    server = start(spawn, "asgiraw:app")

    def gen():
        for i in range(50):
            yield b"%04d" % i
    with httpx.Client(timeout=30) as client:
        resp = client.post("http://127.0.0.1:%d/echo" % server.port, content=gen())
    assert resp.content == b"".join(b"%04d" % i for i in range(50))


def test_keep_alive_serves_several_requests(spawn):
    server = start(spawn, "asgiraw:app")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=IO_TIMEOUT)
    try:
        ports = set()
        for _ in range(3):
            conn.request("POST", "/scope", body=b"abc")
            resp = conn.getresponse()
            ports.add(json.loads(resp.read())["client"][1])
        assert len(ports) == 1
    finally:
        conn.close()


def test_streaming_response(spawn):
    server = start(spawn, "asgiraw:app")
    with server.connection() as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head, rest = read_head(sock)
        assert b"transfer-encoding: chunked" in head.lower()
        data = rest
        while not data.endswith(b"0\r\n\r\n"):
            more = sock.recv(65536)
            assert more, data
            data += more
    assert b"part0\n" in data and b"end\n" in data


def test_fastapi_sse_and_lifespan_state(spawn):
    server = start(spawn, "asgi_fastapi:app")
    with httpx.Client(timeout=10) as client:
        with client.stream("GET", "http://127.0.0.1:%d/sse" % server.port) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in resp.iter_lines() if line]
        assert lines == ["data: event 0", "data: event 1", "data: event 2"]
        resp = client.post("http://127.0.0.1:%d/echo" % server.port, content=b"x" * 1000)
        assert resp.json() == {"size": 1000, "pool": "ready"}


# -- disconnects and backpressure --------------------------------------------

def test_disconnect_seen_by_waiting_receive(spawn, events):
    server = start(spawn, "asgiraw:app", env={"ASGI_EVENTS_FILE": str(events)})
    with server.connection() as sock:
        sock.sendall(b"GET /wait-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)  # the app is waiting in receive(); nothing to poll for
    wait_for_event(events, "wait-disconnect: http.disconnect")


def test_app_ignoring_disconnect_is_cancelled_after_grace(spawn, events):
    server = start(spawn, "asgiraw:app", "--asgi-disconnect-grace-period", "1",
                   env={"ASGI_EVENTS_FILE": str(events)})
    with server.connection() as sock:
        sock.sendall(b"GET /ignore-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)  # the app is in its sleep; nothing to poll for
        left = time.monotonic()
    wait_for_event(events, "ignore-disconnect: cancelled")
    assert time.monotonic() - left >= 0.9


def test_send_after_client_left_raises_oserror(spawn, events):
    server = start(spawn, "asgiraw:app", env={"ASGI_EVENTS_FILE": str(events)})
    with server.connection() as sock:
        sock.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = read_head(sock)
        assert b"200" in head
    wait_for_event(events, "forever: ClientDisconnected isinstance OSError=True")


def test_slow_client_holds_back_the_app(spawn, events):
    """64 MiB streamed to a client that reads nothing: send() waits, so the
    app gets only socket buffers plus the write credit ahead, and raises
    OSError when the client goes."""
    server = start(spawn, "asgiraw:app", env={"ASGI_EVENTS_FILE": str(events)})
    sock = server.connection()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(b"GET /big?1024 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(1.0)  # a slow client: it reads nothing for a second
    sock.close()
    text = wait_for_event(events, "send raised OSError after")
    sent = int(text.rsplit("after", 1)[1].split()[0])
    assert sent < 200, text  # 200 x 64 KiB = 12.5 MiB, far more than buffers


# -- misbehaving apps ----------------------------------------------------------

def test_response_never_started_is_500(spawn):
    server = start(spawn, "asgiraw:app")
    mark = server.mark()
    status, _, _ = server.get("/no-response")
    assert status == 500
    server.stderr.wait_for("ASGI callable returned without starting response", start=mark)


def test_exception_before_start_is_500_with_traceback(spawn):
    server = start(spawn, "asgiraw:app")
    mark = server.mark()
    status, headers, _ = server.get("/raise-before")
    assert status == 500
    assert headers["connection"] == "close"
    server.stderr.wait_for("Exception in ASGI application", start=mark)
    server.stderr.wait_for("ValueError: boom before start", start=mark)


def test_exception_after_start_closes_the_connection(spawn):
    server = start(spawn, "asgiraw:app")
    reply = server.raw(b"GET /raise-after HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = reply.data.partition(b"\r\n\r\n")
    assert b"content-length: 10" in head.lower()
    assert body == b"12345"  # short: the client sees the connection close


def test_second_start_raises_in_the_app(spawn):
    server = start(spawn, "asgiraw:app")
    status, _, body = server.get("/double-start")
    assert status == 200
    assert body.startswith(b"raised: Expected ASGI message 'http.response.body'")


def test_unknown_message_raises_in_the_app(spawn):
    server = start(spawn, "asgiraw:app")
    status, _, body = server.get("/unknown-message")
    assert status == 200
    assert b"but got 'http.response.bogus'" in body


def test_send_after_complete_raises(spawn, events):
    server = start(spawn, "asgiraw:app", env={"ASGI_EVENTS_FILE": str(events)})
    assert server.get("/after-complete")[2] == b"done"
    wait_for_event(events, "after-complete raised: Unexpected ASGI message")


def test_return_mid_body_leaves_chunked_unterminated_and_closes(spawn):
    server = start(spawn, "asgiraw:app")
    mark = server.mark()
    reply = server.raw(b"GET /return-mid-body HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = reply.data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"4\r\nhalf\r\n"  # no last chunk: the client sees a cut body
    assert reply.closed
    server.stderr.wait_for("ASGI callable returned without completing response", start=mark)


def test_return_value_is_logged(spawn):
    server = start(spawn, "asgiraw:app")
    mark = server.mark()
    assert server.get("/returns-value")[2] == b"ok"
    server.stderr.wait_for("ASGI callable should return None, but returned '42'", start=mark)


@pytest.mark.parametrize("request_bytes", [
    # Bad chunk framing: a size line that is not hex.
    b"POST /read-note HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\nzz\r\n",
    # Content-Length longer than what arrives before the client half-closes.
    b"POST /read-note HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part",
], ids=["bad-chunked", "short-content-length"])
def test_malformed_body_is_400_and_the_app_sees_a_disconnect(spawn, events, request_bytes):
    """As on the WSGI classes: the 4xx for the request, not the app's answer;
    the app's receive() gets http.disconnect and its send() raises."""
    server = start(spawn, "asgiraw:app", "--access-logfile", "-",
                   env={"ASGI_EVENTS_FILE": str(events)})
    mark = server.mark()
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    resp = parse_response(data)
    assert resp.status == 400, data
    assert b"app answer" not in data
    server.stderr.wait_for("Invalid request from ip=127.0.0.1", start=mark)
    seen = wait_for_event(events, "read-note: send raised OSError")
    assert "read-note: http.disconnect" in seen
    server.stdout.wait_for('"POST /read-note HTTP/1.1" 400')


def test_stalled_body_is_408(spawn, events):
    server = start(spawn, "asgiraw:app", "--body-timeout", "1",
                   env={"ASGI_EVENTS_FILE": str(events)})
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(b"POST /read-note HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart")
        head, _ = read_head(sock)
    assert head.startswith(b"HTTP/1.1 408 "), head
    wait_for_event(events, "read-note: http.disconnect")


# -- extensions ----------------------------------------------------------------

def test_early_hints_go_out_before_the_response(spawn):
    server = start(spawn, "asgiraw:app")
    reply = server.raw(b"GET /ext/early-hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.data.startswith(
        b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nlink: </b.js>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\n"), reply.data
    assert reply.data.endswith(b"\r\n\r\nhinted")


def test_http10_is_offered_no_interim_responses(spawn):
    server = start(spawn, "asgiraw:app")
    resp = parse_response(server.raw(b"GET /scope HTTP/1.0\r\n\r\n").data)
    assert json.loads(resp.body)["extensions"] == {"http.response.pathsend": {}}


def test_trailers_on_http11_when_the_client_takes_them(spawn):
    server = start(spawn, "asgiraw:app")
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(b"GET /ext/trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
        head, rest = read_head(sock)
        while not rest.endswith(b"\r\n\r\n"):
            rest += sock.recv(65536)
        assert b"transfer-encoding: chunked" in head.lower()
        assert b"content-length" not in head.lower()  # chunked replaces the app's length
        assert rest == b"2\r\nda\r\n2\r\nta\r\n0\r\nx-checksum: abc\r\nx-count: 4\r\n\r\n"
        # The connection carries the next request.
        sock.sendall(b"GET /ext/trailers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert parse_response(data).body == b"no trailers offered"


def test_trailers_over_http2(spawn):
    server = start(spawn, "asgiraw:app", "--http2-cleartext", "prior-knowledge")
    headers, body, trailers = h2_get(server.port, "/ext/trailers")
    assert headers[b":status"] == b"200"
    assert body == b"data"
    assert trailers == [(b"x-checksum", b"abc"), (b"x-count", b"4")]


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "no-sendfile"])
def test_pathsend(spawn, tmp_path, sendfile):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    args = [] if sendfile else ["--no-sendfile"]
    server = start(spawn, "asgiraw:app", *args)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=IO_TIMEOUT)
    try:
        for method in ("GET", "HEAD", "GET"):  # one kept-alive connection
            conn.request(method, "/ext/pathsend?" + str(path))
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200
            assert resp.getheader("content-length") == str(len(data))
            assert body == (data if method == "GET" else b"")
    finally:
        conn.close()


def test_pathsend_over_http2(spawn, tmp_path):
    """HTTP/2 offers pathsend too: the file arrives whole in DATA frames
    (several windows' worth), with its length; HEAD gets the length only;
    a missing file is a 500."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    server = start(spawn, "asgiraw:app", "--http2-cleartext", "prior-knowledge")
    headers, body, _ = h2_get(server.port, "/ext/pathsend?" + str(path))
    assert headers[b":status"] == b"200"
    assert headers[b"content-length"] == str(len(data)).encode()
    assert body == data
    headers, body, _ = h2_get(server.port, "/ext/pathsend?" + str(path), method="HEAD")
    assert (headers[b":status"], headers[b"content-length"], body) == \
        (b"200", str(len(data)).encode(), b"")
    headers, _, _ = h2_get(server.port, "/ext/pathsend?" + str(tmp_path / "nope"))
    assert headers[b":status"] == b"500"
    # Any HEAD over HTTP/2 carries no content, whatever the app sends.
    headers, body, _ = h2_get(server.port, "/scope", method="HEAD")
    assert (headers[b":status"], body) == (b"200", b"")


def test_pathsend_of_a_missing_file_is_500(spawn, tmp_path):
    server = start(spawn, "asgiraw:app")
    mark = server.mark()
    status, _, _ = server.get("/ext/pathsend?" + str(tmp_path / "nope"))
    assert status == 500
    server.stderr.wait_for("http.response.pathsend of .*nope: No such file", start=mark)


def test_extension_not_offered_raises_in_the_app(spawn):
    """Trailers without TE: trailers are refused in send(), not sent."""
    server = start(spawn, "asgiraw:app")
    status, _, body = server.get("/ext/trailers-anyway")
    assert (status, body) == (200, b"raised: ASGI extension 'http.response.trailers' is not offered here.")


# -- lifespan ------------------------------------------------------------------

def test_lifespan_startup_and_shutdown(spawn, events):
    server = start(spawn, "asgiraw:app", env={"ASGI_EVENTS_FILE": str(events)})
    assert events.read_text() == "startup\n"
    assert server.stop() == 0
    assert events.read_text() == "startup\nshutdown\n"


def test_lifespan_off_sends_no_events(spawn, events):
    server = start(spawn, "asgiraw:app", "--asgi-lifespan", "off",
                   env={"ASGI_EVENTS_FILE": str(events)})
    assert scope_of(server, "/scope")["state"] == {}
    server.stop()
    assert not events.exists()


def test_lifespan_startup_failed_is_a_boot_failure(ferricorn_bin):
    proc = run_ferricorn(ferricorn_bin, ["-b", "127.0.0.1:0", "-k", "async", "asgiraw:app"],
                         env={"ASGI_STARTUP": "fail"})
    assert proc.returncode == 3, proc.stderr
    assert "Application startup failed: no database" in proc.stderr
    assert "Worker failed to boot" in proc.stderr


def test_lifespan_startup_longer_than_timeout_is_a_boot_failure(ferricorn_bin):
    started = time.monotonic()
    proc = run_ferricorn(ferricorn_bin, ["-b", "127.0.0.1:0", "-k", "async", "--timeout", "2",
                                         "asgiraw:app"], env={"ASGI_STARTUP": "hang"})
    assert proc.returncode == 3, proc.stderr
    assert "WORKER BOOT TIMEOUT" in proc.stderr
    assert time.monotonic() - started < 20


def test_a_loop_blocked_by_the_app_is_a_worker_timeout(spawn):
    """--timeout 2, a view that blocks the asyncio loop in time.sleep(30):
    the I/O thread stays free but stops beating for the stuck loop, so the
    master logs `WORKER TIMEOUT (pid:N)`, a new worker boots and serves
    (as gunicorn's ASGI worker, which beats from its loop)."""
    server = start(spawn, "asgiraw:app", "--timeout", "2", "--graceful-timeout", "1")
    (old,) = server.booted_pids()
    mark = server.mark()
    blocked = socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT)
    blocked.sendall(b"GET /block?30 HTTP/1.1\r\nHost: x\r\n\r\n")
    server.stderr.wait_for(r"WORKER TIMEOUT \(pid:%d\)" % old, start=mark, timeout=15)
    new = int(server.stderr.wait_for(r"Booting worker with pid: (\d+)", start=mark,
                                     timeout=15)[0].group(1))
    assert new != old
    server.wait_until_serving(15)
    status, _, body = server.get("/sleep?0")
    assert (status, body) == (200, b"slept")
    blocked.close()


# -- access log ----------------------------------------------------------------

def test_access_log_line(spawn):
    server = start(spawn, "asgiraw:app", "--access-logfile", "-")
    server.get("/scope?q=1")
    line = server.stdout.wait_for(r'"GET /scope\?q=1 HTTP/1.1" 200 \d+')[0]
    assert line


# -- concurrency ---------------------------------------------------------------

def raise_nofile(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def test_thousand_concurrent_sleeps_on_one_worker(spawn):
    raise_nofile(4096)
    server = start(spawn, "asgiraw:app", "--worker-connections", "1100")

    async def main():
        # Connect first, so the clock measures the server serving 1,000
        # requests at once, not this client's connection rate.
        conns = [await asyncio.open_connection("127.0.0.1", server.port)
                 for _ in range(1000)]
        began = time.monotonic()
        for _, writer in conns:
            writer.write(b"GET /sleep?2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        replies = await asyncio.gather(*(reader.read() for reader, _ in conns))
        elapsed = time.monotonic() - began
        for _, writer in conns:
            writer.close()
        return replies, elapsed

    replies, elapsed = asyncio.run(main())
    print("1000 x sleep(2) on -w 1: %.2f s" % elapsed)
    assert all(r.startswith(b"HTTP/1.1 200") and r.endswith(b"slept") for r in replies)
    assert elapsed < 2.5, elapsed


# -- HTTP/2 and WebSocket --------------------------------------------------------

def curl_h2(server, path, *args):
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "20",
                          "-w", "\n%{http_version} %{http_code}", *args,
                          "http://127.0.0.1:%d%s" % (server.port, path)],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    body, _, tail = out.stdout.rpartition(b"\n")
    version, code = tail.split()
    return version.decode(), int(code), body


def test_http2_prior_knowledge(spawn, tmp_path):
    server = start(spawn, "asgiraw:app", "--http2-cleartext", "prior-knowledge",
                   "--access-logfile", "-")
    version, code, body = curl_h2(server, "/scope?h=2")
    assert (version, code) == ("2", 200)
    scope = json.loads(body)
    assert scope["http_version"] == "2"
    assert scope["headers"][0][0] == {"bytes": "host"}
    assert not any(h[0]["bytes"].startswith(":") for h in scope["headers"])
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(3 * 1024 * 1024))
    version, code, body = curl_h2(server, "/echo", "--data-binary", "@%s" % payload)
    assert (version, code) == ("2", 200)
    assert body == payload.read_bytes()
    assert curl_h2(server, "/raise-before")[1] == 500
    server.stdout.wait_for(r'"GET /scope\?h=2 HTTP/2" 200')


def test_fastapi_sse_over_http2(spawn):
    server = start(spawn, "asgi_fastapi:app", "--http2-cleartext", "prior-knowledge")
    version, code, body = curl_h2(server, "/sse")
    assert (version, code) == ("2", 200)
    assert body == b"data: event 0\n\ndata: event 1\n\ndata: event 2\n\n"


def ws_url(server, path):
    return "ws://127.0.0.1:%d%s" % (server.port, path)


def ws_run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_websocket_echo_subprotocol_and_headers(spawn, events):
    server = start(spawn, "asgiraw:app", env={"ASGI_EVENTS_FILE": str(events)})

    async def main():
        async with ws_connect(ws_url(server, "/ws/echo"), subprotocols=["chat", "x"],
                              max_size=None) as ws:
            assert ws.subprotocol == "chat"
            assert ws.response.headers["x-accepted"] == "yes"
            await ws.send("hi")
            assert await ws.recv() == "echo:hi"
            await ws.send(b"\x00\x01\x02")
            assert await ws.recv() == b"\x02\x01\x00"
            big = "y" * (1024 * 1024)
            await ws.send(big)
            assert await ws.recv() == "echo:" + big
    ws_run(main())
    wait_for_event(events, "ws disconnect 1000")


def test_websocket_scope(spawn):
    server = start(spawn, "asgiraw:app", "--root-path", "/r")

    async def main():
        async with ws_connect(ws_url(server, "/ws/scope?a=1")) as ws:
            return json.loads(await ws.recv())
    scope = ws_run(main())
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/r/ws/scope" and scope["root_path"] == "/r"
    assert scope["query_string"] == {"bytes": "a=1"}
    assert scope["subprotocols"] == []
    assert "method" not in scope
    assert scope["extensions"] == {"websocket.http.response": {}}


def test_websocket_message_too_big_closes_1009(spawn):
    server = start(spawn, "asgiraw:app", "--websocket-max-message-size", "1000")

    async def main():
        async with ws_connect(ws_url(server, "/ws/echo")) as ws:
            await ws.send("x" * 999)
            assert await ws.recv() == "echo:" + "x" * 999
            await ws.send("x" * 1001)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code
    assert ws_run(main()) == 1009


def test_websocket_close_codes(spawn):
    server = start(spawn, "asgiraw:app")

    async def closed_with(path):
        async with ws_connect(ws_url(server, path)) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code, closed.value.rcvd.reason
    assert ws_run(closed_with("/ws/close-custom")) == (4001, "custom")
    assert ws_run(closed_with("/ws/raise-after"))[0] == 1011


@pytest.mark.parametrize("path,status,body", [
    ("/ws/deny", 401, b"no entry"),
    ("/ws/refuse", 403, None),
    ("/ws/raise-before", 500, None),
])
def test_websocket_refusals(spawn, path, status, body):
    server = start(spawn, "asgiraw:app")

    async def main():
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with ws_connect(ws_url(server, path)):
                pass
        return refused.value.response
    response = ws_run(main())
    assert response.status_code == status
    if body is not None:
        assert bytes(response.body) == body
        assert response.headers["x-why"] == "token"


def test_websocket_return_before_accept_is_403(spawn):
    server = start(spawn, "asgiraw:app")

    async def main():
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with ws_connect(ws_url(server, "/ws/return-before")):
                pass
        return refused.value.response.status_code
    assert ws_run(main()) == 403


def test_websocket_return_after_accept_closes_1000(spawn):
    server = start(spawn, "asgiraw:app")

    async def main():
        async with ws_connect(ws_url(server, "/ws/return-after")) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code
    assert ws_run(main()) == 1000


def test_websocket_close_while_a_receive_waits(spawn, events):
    """granian hangs here until the client acts; the close must go out."""
    server = start(spawn, "asgiraw:app", env={"ASGI_EVENTS_FILE": str(events)})

    async def main():
        async with ws_connect(ws_url(server, "/ws/close-while-receiving")) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code, closed.value.rcvd.reason
    assert ws_run(main()) == (4002, "bye")
    wait_for_event(events, "close-while-receiving: websocket.disconnect")


def test_websocket_send_after_client_closed_raises_oserror(spawn, events):
    server = start(spawn, "asgiraw:app", env={"ASGI_EVENTS_FILE": str(events)})

    async def main():
        async with ws_connect(ws_url(server, "/ws/send-after-close")):
            pass
    ws_run(main())
    seen = wait_for_event(events, "send-after-close raised OSError")
    assert "send-after-close got websocket.disconnect" in seen


def test_graceful_stop_closes_websockets_with_1012(spawn, events):
    server = start(spawn, "asgiraw:app", env={"ASGI_EVENTS_FILE": str(events)})

    async def main():
        async with ws_connect(ws_url(server, "/ws/echo")) as ws:
            await ws.send("up")
            assert await ws.recv() == "echo:up"
            server.signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code
    assert ws_run(main()) == 1012
    assert server.wait() == 0
    text = events.read_text()
    assert "ws disconnect 1012" in text and text.endswith("shutdown\n"), text


def test_starlette_websocket(spawn):
    server = start(spawn, "asgi_starlette:app")

    async def main():
        async with ws_connect(ws_url(server, "/shout")) as ws:
            await ws.send("hello")
            return await ws.recv()
    assert ws_run(main()) == "HELLO"


def test_websocket_bad_handshake_is_400(spawn):
    server = start(spawn, "asgiraw:app")
    reply = server.raw(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n")
    assert reply.data.startswith(b"HTTP/1.1 400 ")


def test_tls_http11_and_h2_by_alpn(spawn, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    server = start(spawn, "asgiraw:app", "--certfile", str(cert), "--keyfile", str(key),
                   "--http-protocols", "h1,h2", server_cls=TlsServer)
    for flag, version in (("--http1.1", "1.1"), ("--http2", "2")):
        out = subprocess.run(["curl", "-sSk", flag, "--max-time", "20", "-w", "\n%{http_version}",
                              "https://127.0.0.1:%d/scope" % server.port],
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        body, _, got = out.stdout.rpartition(b"\n")
        assert got.decode() == version
        scope = json.loads(body)
        assert (scope["scheme"], scope["http_version"]) == ("https", version)
        tls = scope["extensions"]["tls"]
        assert tls["tls_version"] in (0x0303, 0x0304)
        assert isinstance(tls["cipher_suite"], int) and tls["cipher_suite"] > 0
        assert tls["client_cert_chain"] == [] and tls["client_cert_error"] is None
