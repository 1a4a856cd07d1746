"""A FastAPI app for tests/test_asgi.py."""
import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


@asynccontextmanager
async def lifespan(app):
    yield {"pool": "ready"}


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def root():
    return {"hello": "world"}


@app.get("/items/{item_id}")
async def item(item_id: int, q: str = ""):
    return {"item_id": item_id, "q": q}


@app.post("/echo")
async def echo(request: Request):
    body = await request.body()
    return {"size": len(body), "pool": request.state.pool}


@app.get("/sse")
async def sse():
    async def events():
        for i in range(3):
            yield "data: event %d\n\n" % i
            await asyncio.sleep(0.01)
    return StreamingResponse(events(), media_type="text/event-stream")
