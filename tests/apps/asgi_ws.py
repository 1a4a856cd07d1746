"""A raw ASGI WebSocket app for tests/test_asgi_websocket.py.

/echo: echoes text ("echo:" + text) and binary (as sent).
/lazy: accepts, then does not receive() until a /release connection
       comes (module state: the tests run one worker); then takes every
       message and answers "got <count> <bytes>" for each "end" text.
/release: lets /lazy go on.
Disconnects are noted in $ASGI_EVENTS_FILE as "disconnect <code> <reason>".
"""
import asyncio
import os

EVENTS = os.environ.get("ASGI_EVENTS_FILE")
RELEASE = None


def note(line):
    if EVENTS:
        with open(EVENTS, "a") as f:
            f.write(line + "\n")


def release_event():
    global RELEASE
    if RELEASE is None:
        RELEASE = asyncio.Event()
    return RELEASE


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"websocket only"})
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    path = scope["path"]
    if path == "/release":
        release_event().set()
        await send({"type": "websocket.close"})
        return
    if path == "/lazy":
        await send({"type": "websocket.send", "text": "ready"})
        await release_event().wait()
    count = size = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            note("disconnect %s %s" % (message["code"], message.get("reason", "")))
            return
        if path == "/lazy":
            if message.get("text") == "end":
                await send({"type": "websocket.send", "text": "got %d %d" % (count, size)})
            else:
                count += 1
                size += len(message.get("bytes") or b"")
        elif message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo:" + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
