"""A raw ASGI 3 app for tests/test_asgi.py: every path is one behaviour."""
import asyncio
import json
import os

EVENTS = os.environ.get("ASGI_EVENTS_FILE")


def note(line):
    """Appends `line` to $ASGI_EVENTS_FILE (what the app saw, for the test)."""
    if EVENTS:
        with open(EVENTS, "a") as f:
            f.write(line + "\n")


async def read_body(receive):
    body = bytearray()
    pieces = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise RuntimeError("unexpected %r" % message)
        body += message["body"]
        pieces += 1
        if not message.get("more_body", False):
            return bytes(body), pieces


async def respond(send, status, body, content_type=b"text/plain"):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


def jsonable(value):
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                if os.environ.get("ASGI_STARTUP") == "fail":
                    await send({"type": "lifespan.startup.failed", "message": "no database"})
                    return
                if os.environ.get("ASGI_STARTUP") == "hang":
                    await asyncio.sleep(3600)
                note("startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                note("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path.endswith("/scope"):
        await read_body(receive)
        info = {k: v for k, v in scope.items() if k != "state"}
        info["state"] = dict(scope.get("state", {}))
        await respond(send, 200, json.dumps(jsonable(info)).encode(),
                      b"application/json")
    elif path == "/echo":
        body, pieces = await read_body(receive)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-pieces", str(pieces).encode())]})
        # Back in pieces, streaming.
        for i in range(0, len(body), 65536):
            await send({"type": "http.response.body", "body": body[i:i + 65536],
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stream":
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"part%d\n" % i,
                        "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"end\n"})
    elif path == "/big":
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 65536
        sent = 0
        try:
            for _ in range(int(scope["query_string"] or b"160")):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += 1
            await send({"type": "http.response.body", "body": b""})
        except OSError as error:
            note("send raised %s after %d" % (type(error).__mro__[1].__name__, sent))
            raise
    elif path == "/forever":
        # Streams until the client leaves; notes how send() failed.
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.02)
        except OSError as error:
            note("forever: %s isinstance OSError=%s" % (type(error).__name__,
                                                         isinstance(error, OSError)))
            raise
    elif path == "/wait-disconnect":
        await read_body(receive)
        message = await receive()
        note("wait-disconnect: %s" % message["type"])
    elif path == "/ignore-disconnect":
        # Never looks at receive(): only the grace period's cancel ends it.
        await read_body(receive)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            note("ignore-disconnect: cancelled")
            raise
    elif path == "/loop":
        await read_body(receive)
        await respond(send, 200, type(asyncio.get_running_loop()).__module__.encode())
    elif path == "/sleep":
        await read_body(receive)
        await asyncio.sleep(float(scope["query_string"] or b"2"))
        await respond(send, 200, b"slept")
    elif path == "/block":
        # Synchronous sleep: the whole loop stops turning (a broken app).
        import time
        time.sleep(float(scope["query_string"] or b"5"))
        await respond(send, 200, b"blocked")
    elif path == "/no-response":
        await read_body(receive)
    elif path == "/raise-before":
        raise ValueError("boom before start")
    elif path == "/raise-after":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        raise ValueError("boom after start")
    elif path == "/double-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except RuntimeError as error:
            await send({"type": "http.response.body", "body": ("raised: %s" % error).encode()})
    elif path == "/unknown-message":
        try:
            await send({"type": "http.response.bogus"})
        except RuntimeError as error:
            await respond(send, 200, ("raised: %s" % error).encode())
    elif path == "/read-note":
        # Notes every receive() until the body ends or the client is gone,
        # then tries to answer and notes how send() fared.
        while True:
            message = await receive()
            note("read-note: %s" % message["type"])
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        try:
            await respond(send, 200, b"app answer")
            note("read-note: answered")
        except OSError as error:
            note("read-note: send raised %s" % type(error).__mro__[1].__name__)
    elif path == "/return-mid-body":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
    elif path == "/returns-value":
        await respond(send, 200, b"ok")
        return 42
    elif path == "/ext/early-hints":
        await send({"type": "http.response.informational", "status": 103,
                    "headers": [(b"link", b"</a.css>; rel=preload")]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        # After start, before the body: still an interim response.
        await send({"type": "http.response.early_hint", "links": [b"</b.js>; rel=preload"]})
        await send({"type": "http.response.body", "body": b"hinted"})
    elif path == "/ext/trailers":
        await read_body(receive)
        if "http.response.trailers" not in scope["extensions"]:
            await respond(send, 200, b"no trailers offered")
            return
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"trailer", b"x-checksum, x-count"),
                                (b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"da", "more_body": True})
        await send({"type": "http.response.body", "body": b"ta"})
        await send({"type": "http.response.trailers", "more_trailers": True,
                    "headers": [(b"x-checksum", b"abc")]})
        await send({"type": "http.response.trailers", "headers": [(b"x-count", b"4")]})
    elif path == "/ext/trailers-anyway":
        try:
            await send({"type": "http.response.start", "status": 200, "trailers": True,
                        "headers": []})
        except RuntimeError as error:
            await respond(send, 200, ("raised: %s" % error).encode())
    elif path == "/ext/pathsend":
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.pathsend",
                    "path": scope["query_string"].decode()})
    elif path == "/after-complete":
        await respond(send, 200, b"done")
        try:
            await send({"type": "http.response.body", "body": b"more"})
        except RuntimeError as error:
            note("after-complete raised: %s" % error)
    else:
        await respond(send, 404, b"not found")


async def websocket(scope, receive, send):
    """WebSocket paths: /ws/echo, /ws/close-custom, /ws/deny, /ws/refuse, /ws/raise."""
    message = await receive()
    assert message["type"] == "websocket.connect", message
    path = scope["path"][len(scope["root_path"]):]
    if path == "/ws/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"x-why", b"token")]})
        await send({"type": "websocket.http.response.body", "body": b"no entry"})
        return
    if path == "/ws/refuse":
        await send({"type": "websocket.close"})
        return
    if path == "/ws/raise-before":
        raise ValueError("boom before accept")
    if path == "/ws/return-before":
        return
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol,
                "headers": [(b"x-accepted", b"yes")]})
    if path == "/ws/close-custom":
        await send({"type": "websocket.close", "code": 4001, "reason": "custom"})
        return
    if path == "/ws/scope":
        info = {k: v for k, v in scope.items() if k not in ("state",)}
        await send({"type": "websocket.send", "text": json.dumps(jsonable(info))})
    if path == "/ws/raise-after":
        raise ValueError("boom after accept")
    if path == "/ws/return-after":
        return
    if path == "/ws/close-while-receiving":
        # A receive() waits in another task while the app closes.
        waiting = asyncio.ensure_future(receive())
        await asyncio.sleep(0.05)
        await send({"type": "websocket.close", "code": 4002, "reason": "bye"})
        message = await asyncio.wait_for(waiting, 10)
        note("close-while-receiving: %s" % message["type"])
        return
    if path == "/ws/send-after-close":
        message = await receive()
        note("send-after-close got %s" % message["type"])
        try:
            await send({"type": "websocket.send", "text": "late"})
            note("send-after-close: no error")
        except OSError as error:
            note("send-after-close raised %s" % type(error).__mro__[1].__name__)
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            note("ws disconnect %s" % message["code"])
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo:" + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})


_http_app = app


async def app(scope, receive, send):  # noqa: F811 (the http app above, plus websocket)
    if scope["type"] == "websocket":
        return await websocket(scope, receive, send)
    return await _http_app(scope, receive, send)
