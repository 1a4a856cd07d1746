"""A Starlette app for tests/test_asgi.py (mounted routes use root_path)."""
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute


async def home(request):
    return PlainTextResponse("home")


async def where(request):
    return JSONResponse({"url": str(request.url), "root_path": request.scope["root_path"],
                         "path": request.url.path})


async def shout(websocket):
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text.upper())


app = Starlette(routes=[Route("/", home), Route("/where", where), WebSocketRoute("/shout", shout),
                        Mount("/sub", routes=[Route("/where", where)])])
