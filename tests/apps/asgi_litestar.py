"""A Litestar app for tests/test_asgi_frameworks.py: GET, body echo, a
streamed response, an on_startup hook (lifespan) and a websocket echo."""
from litestar import Litestar, Request, WebSocket, get, post, websocket
from litestar.response import Stream

started = {"startup": False}


def startup():
    started["startup"] = True


@get("/")
async def index() -> dict:
    return {"framework": "litestar", "startup": started["startup"]}


@post("/echo", status_code=200)
async def echo(request: Request) -> bytes:
    return await request.body()


@get("/stream")
async def stream() -> Stream:
    async def parts():
        for i in range(3):
            yield b"part %d\n" % i
    return Stream(parts(), media_type="text/plain")


@websocket("/ws")
async def ws(socket: WebSocket) -> None:
    await socket.accept()
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await socket.send_text("echo:" + message["text"])
        else:
            await socket.send_bytes(message["bytes"][::-1])


app = Litestar([index, echo, stream, ws], on_startup=[startup])
