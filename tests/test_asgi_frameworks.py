"""The ASGI framework matrix on `-k async`: unmodified Quart, Litestar,
Django (get_asgi_application()) and Channels apps (apps/asgi_quart.py,
asgi_litestar.py, asgi_django.py), each driven by httpx and the `websockets`
client: a GET, a POST body echo, a streamed response, the startup hook
where the framework has one (run by ferricorn's lifespan), a websocket echo.
"""
import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from harness import IO_TIMEOUT, ServerPool

APPS = {
    "quart": "asgi_quart:app",
    "litestar": "asgi_litestar:app",
    "django": "asgi_django:application",
    "channels": "asgi_django:channels_app",
}
WEBSOCKETS = ("quart", "litestar", "channels")


@pytest.fixture(scope="module", params=sorted(APPS))
def fw(request, ferricorn_bin):
    with ServerPool(ferricorn_bin) as pool:
        server = pool.start(APPS[request.param], args=["-w", "1", "-k", "async"])
        server.framework = request.param
        yield server


def client(server):
    return httpx.Client(base_url="http://127.0.0.1:%d" % server.port, timeout=IO_TIMEOUT)


def test_get(fw):
    with client(fw) as c:
        r = c.get("/")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["framework"] == ("django" if fw.framework == "channels" else fw.framework)
    if fw.framework in ("quart", "litestar"):
        # The startup hook ran (ferricorn's lifespan) before the first request.
        assert body["startup"] is True


def test_post_body_echo(fw):
    payload = bytes(range(256)) * 4096  # 1 MiB, more than one read
    with client(fw) as c:
        r = c.post("/echo", content=payload)
        assert r.status_code == 200, r.text
        assert r.content == payload
        # ...and chunked (no Content-Length), on the same kept-alive connection.
        r = c.post("/echo", content=iter([payload[:1000], payload[1000:]]))
        assert r.status_code == 200, r.text
        assert r.content == payload


def test_streaming_response(fw):
    with client(fw) as c, c.stream("GET", "/stream") as r:
        assert r.status_code == 200
        assert r.headers.get("transfer-encoding") == "chunked"
        assert b"".join(r.iter_bytes()) == b"part 0\npart 1\npart 2\n"


def test_websocket_echo(fw):
    if fw.framework not in WEBSOCKETS:
        pytest.skip("plain Django has no websockets (Channels does)")

    async def main():
        async with ws_connect("ws://127.0.0.1:%d/ws" % fw.port) as ws:
            await ws.send("hi")
            assert await ws.recv() == "echo:hi"
            await ws.send(b"\x01\x02\x03")
            assert await ws.recv() == b"\x03\x02\x01"
    asyncio.run(asyncio.wait_for(main(), 20))


def test_no_traceback_logged(fw):
    """Runs last per framework: nothing above made ferricorn log an error."""
    log = fw.log()
    assert "Traceback" not in log, log
    assert "[ERROR]" not in log, log
