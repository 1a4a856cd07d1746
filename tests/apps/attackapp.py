"""The app behind the attack suite (tests/test_attacks.py).

/        a small answer (what probes ask for)
/sleep   sleeps ?s=SECONDS in time.sleep, which releases the GIL
/hog     a regular expression that backtracks for minutes in C, holding
         the GIL the whole time (re never releases it)
"""
import re
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING", "s=1").partition("=")[2] or 1))
    elif path == "/hog":
        re.match(r"(a+)+$", "a" * 64 + "b")
    body = b"ok\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi_application(scope, receive, send):
    """`/` and `/sleep` (asyncio.sleep) for ASGI (`-k async`, the suite's kind "asgi")."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/sleep":
        import asyncio
        query = scope["query_string"].decode()
        await asyncio.sleep(float(query.partition("=")[2] or 1))
    body = b"ok\n"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
