"""A Starlette app for tests/test_asgi.py (mounted routes use root_path)."""
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route


async def home(request):
    return PlainTextResponse("home")


async def where(request):
    return JSONResponse({"url": str(request.url), "root_path": request.scope["root_path"],
                         "path": request.url.path})


app = Starlette(routes=[Route("/", home), Route("/where", where),
                        Mount("/sub", routes=[Route("/where", where)])])
