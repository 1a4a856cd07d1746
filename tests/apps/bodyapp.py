"""Request bodies as an app sees them, for tests/test_request_bodies.py.

Every request reads its body from wsgi.input and reports what it read,
and any read error, as one line on wsgi.errors:

    bodyapp-saw {"tag": ..., "len": ..., "sha256": ..., "error": ...}

so a test can check what the app saw even when the client got a 400.

Paths:
  /len?tag=T&how=H     read the body (H: read, read1 = read(1) until b'',
                       readline, length = read(CONTENT_LENGTH) as apps that
                       trust the header do), answer 200 with the JSON report
  /caught?tag=T        read, swallow any error, answer 200 "caught"
  /started?tag=T       start the response and send its first bytes, then
                       read; the report (and a second read's outcome) is the
                       rest of the response body

`flask_app` is a Flask app whose /up answers len(request.get_data()).
"""
import hashlib
import json
from urllib.parse import parse_qs

from flask import Flask, request

CHUNK = 64 * 1024


def read_body(environ, how):
    stream = environ["wsgi.input"]
    if how == "read1":
        parts = []
        while True:
            byte = stream.read(1)
            if not byte:
                return b"".join(parts)
            parts.append(byte)
    if how == "readline":
        return b"".join(iter(stream.readline, b""))
    if how == "length":
        return stream.read(int(environ.get("CONTENT_LENGTH") or 0))
    return stream.read()


def report(environ, tag, how):
    """Reads the body; returns the report dict (also logged) and the
    exception the read raised, if any."""
    seen = {"tag": tag, "len": None, "sha256": None, "error": None}
    raised = None
    try:
        body = read_body(environ, how)
        seen["len"] = len(body)
        seen["sha256"] = hashlib.sha256(body).hexdigest()
    except Exception as error:  # the report says what was raised
        seen["error"] = "%s: %s" % (type(error).__name__, error)
        raised = error
    environ["wsgi.errors"].write("bodyapp-saw %s\n" % json.dumps(seen))
    environ["wsgi.errors"].flush()
    return seen, raised


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    tag = query.get("tag", ["-"])[0]
    how = query.get("how", ["read"])[0]
    path = environ["PATH_INFO"]
    if path == "/len":
        seen, raised = report(environ, tag, how)
        if raised is not None:
            # Let it propagate, as an app would that does not catch it.
            raise raised
        body = json.dumps(seen).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/caught":
        report(environ, tag, how)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"caught"]
    if path == "/started":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"started\n")
        seen, _ = report(environ, tag, how)
        try:
            again = "again: %r" % environ["wsgi.input"].read()
        except Exception as error:
            again = "again: %s" % type(error).__name__
        return [json.dumps(seen).encode() + b"\n", again.encode() + b"\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"bodyapp"]


flask_app = Flask(__name__)


@flask_app.route("/", methods=["GET"])
def flask_index():
    return "flask bodyapp"


@flask_app.route("/up", methods=["POST", "PUT"])
def flask_up():
    return str(len(request.get_data()))
