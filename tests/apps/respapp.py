"""Responses that stress the server's side of WSGI: big files (through
wsgi.file_wrapper and Flask's send_file), a big iterable, latin-1 and
non-latin-1 header values, app-set Server/Date/Connection, early hints,
and slow requests for the timeout tests.

`BIG_FILE` (environment) names the file served by /file and /flask/file.
"""
import os
import time
from urllib.parse import parse_qs

from flask import Flask, send_file

flask_app = Flask(__name__)


@flask_app.route("/flask/file")
def flask_file():
    return send_file(os.environ["BIG_FILE"], mimetype="application/octet-stream")


ITER_PIECE = 64 * 1024


def big_iterable(size):
    """`size` bytes in 64 KiB pieces, a pattern that shows lost or
    reordered pieces in a hash."""
    sent = 0
    index = 0
    while sent < size:
        n = min(ITER_PIECE, size - sent)
        yield bytes([index % 251]) * n
        sent += n
        index += 1


def query(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def application(environ, start_response):
    path = environ["PATH_INFO"]
    args = query(environ)
    if path.startswith("/flask/"):
        return flask_app(environ, start_response)
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    if path == "/file":
        handle = open(os.environ["BIG_FILE"], "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](handle, 64 * 1024)
    if path == "/iter":
        size = int(args.get("size", 20 * 1024 * 1024))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return big_iterable(size)
    if path == "/header":
        # ?value=... is set as the X-Value header (a str, as PEP 3333 wants).
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Value", args["value"])])
        return [b"header sent"]
    if path == "/server-date":
        start_response("200 OK", [
            ("Content-Type", "text/plain"),
            ("Server", "app-server/1.0"),
            ("Date", "Tue, 01 Jan 2030 00:00:00 GMT"),
        ])
        return [b"app headers"]
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
        return [b"closing"]
    if path == "/ignore-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"body not read"]
    if path == "/early-hints":
        hints = environ["wsgi.early_hints"]
        hints([("Link", "</style.css>; rel=preload; as=style")])
        hints([("Link", "</app.js>; rel=preload; as=script")])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"after hints"]
    if path == "/sleep":
        time.sleep(float(args["s"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
