"""The app of tests/test_worker_classes.py: streaming in both directions,
sleeps, and an endpoint that ignores its request body."""
import hashlib
import json
import os
import time
from urllib.parse import parse_qs


def _args(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _respond(start_response, body, status="200 OK", content_type="text/plain"):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", content_type),
                            ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        return _respond(start_response, "Hello, world!\n")
    if path == "/echo":
        return _respond(start_response, environ["wsgi.input"].read(),
                        content_type="application/octet-stream")
    if path == "/count":
        # Reads the body in 64 KB pieces, keeping none of it.
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        total = 0
        while True:
            piece = stream.read(65536)
            if not piece:
                break
            total += len(piece)
            digest.update(piece)
        return _respond(start_response, json.dumps({"count": total, "sha256": digest.hexdigest()}),
                        content_type="application/json")
    if path == "/stream":
        # First chunk, half a second of silence, second chunk.
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            yield b"first\n"
            time.sleep(0.5)
            yield b"second\n"
        return body()
    if path == "/sleep":
        time.sleep(float(_args(environ).get("s", "1")))
        return _respond(start_response, "slept\n")
    if path == "/ignore":
        # Never touches wsgi.input.
        return _respond(start_response, "ignored\n")
    if path == "/pid":
        return _respond(start_response, str(os.getpid()))
    if path == "/environ":
        keys = ("wsgi.url_scheme", "SERVER_PROTOCOL", "REQUEST_METHOD", "HTTPS",
                "CONTENT_LENGTH", "wsgi.multithread", "wsgi.multiprocess")
        dumped = {k: environ[k] if isinstance(environ.get(k), str) else repr(environ.get(k))
                  for k in keys if k in environ}
        return _respond(start_response, json.dumps(dumped), content_type="application/json")
    return _respond(start_response, "not found\n", "404 Not Found")


app = application
