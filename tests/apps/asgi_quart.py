"""A Quart app for tests/test_asgi_frameworks.py: GET, body echo, a
streamed response, a startup hook (lifespan) and a websocket echo."""
from quart import Quart, request, websocket

app = Quart(__name__)
started = {"startup": False}


@app.before_serving
async def startup():
    started["startup"] = True


@app.get("/")
async def index():
    return {"framework": "quart", "startup": started["startup"]}


@app.post("/echo")
async def echo():
    return await request.get_data()


@app.get("/stream")
async def stream():
    async def parts():
        for i in range(3):
            yield b"part %d\n" % i
    return parts(), 200, {"Content-Type": "text/plain"}


@app.websocket("/ws")
async def ws():
    while True:
        message = await websocket.receive()
        await websocket.send("echo:" + message if isinstance(message, str) else message[::-1])
