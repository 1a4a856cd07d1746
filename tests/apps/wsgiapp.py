"""A plain WSGI app with one route per behaviour the end-to-end tests probe.

Routes are chosen by the first segment of PATH_INFO; query arguments tune
them. The close() tests append a tag to the file named by env CLOSE_LOG.
"""
import io
import json
import os
import sys
import time
from urllib.parse import parse_qs

ROUTES = {}


def route(name):
    def register(func):
        ROUTES[name] = func
        return func
    return register


def args(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def respond(start_response, body, status="200 OK", content_type="text/plain", extra=()):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", content_type),
                            ("Content-Length", str(len(body))), *extra])
    return [body]


def application(environ, start_response):
    segment = environ["PATH_INFO"].split("/")[1]
    handler = ROUTES.get(segment)
    if handler is None:
        return respond(start_response, "not found\n", "404 Not Found")
    return handler(environ, start_response)


app = application


@route("")
def index(environ, start_response):
    return respond(start_response, "ok\n")


@route("pid")
def pid(environ, start_response):
    return respond(start_response, str(os.getpid()))


@route("environ")
def dump_environ(environ, start_response):
    """Every key: str values as they are, anything else as repr()."""
    dumped = {k: v if isinstance(v, str) else repr(v) for k, v in environ.items()}
    return respond(start_response, json.dumps(dumped), content_type="application/json")


@route("echo")
def echo(environ, start_response):
    return respond(start_response, environ["wsgi.input"].read(),
                   content_type="application/octet-stream")


@route("input")
def input_ops(environ, start_response):
    """Runs ?ops=read3.readline.readlines... on wsgi.input; returns each
    result (latin-1 text, lists for readlines/iter) as JSON."""
    stream = environ["wsgi.input"]
    results = []
    for op in args(environ)["ops"].split("."):
        name = op.rstrip("0123456789")
        size = op[len(name):]
        if name == "iter":
            value = list(stream)
        else:
            method = getattr(stream, name)
            value = method(int(size)) if size else method()
        if isinstance(value, list):
            results.append([line.decode("latin-1") for line in value])
        else:
            results.append(value.decode("latin-1"))
    return respond(start_response, json.dumps(results), content_type="application/json")


@route("chunked")
def no_length(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"a" * 10, b"b" * 300, b"", b"c"]


@route("length")
def with_length(environ, start_response):
    return respond(start_response, "exactly 23 bytes long.\n")


@route("status")
def status(environ, start_response):
    """?code=204 or 304: a bodiless status, no Content-Length given."""
    code = args(environ)["code"]
    reason = {"204": "No Content", "304": "Not Modified"}[code]
    start_response("%s %s" % (code, reason), [("X-Status", code)])
    return []


@route("stream")
def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def parts():
        for i in range(5):
            if i:
                time.sleep(0.1)
            yield ("part%d;" % i).encode()
    return parts()


@route("write")
def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"from-write;")
    return [b"from-iterable"]


@route("filewrapper")
def file_wrapper(environ, start_response):
    handle = open(args(environ)["path"], "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](handle, 65536)


@route("bytesio")
def bytesio(environ, start_response):
    data = bytes(range(256)) * 1000
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](io.BytesIO(data), 4096)


class Closing:
    """An iterable recording its close() to $CLOSE_LOG. mode: ok (two
    parts), stream (a long slow stream), raise (raises after one part)."""

    def __init__(self, tag, mode):
        self.tag, self.mode = tag, mode

    def __iter__(self):
        if self.mode == "ok":
            yield b"one;"
            yield b"two;"
        elif self.mode == "stream":
            for _ in range(1000):
                yield b"x" * 1024
                time.sleep(0.01)
        elif self.mode == "raise":
            yield b"before-error;"
            raise RuntimeError("iterable failure " + self.tag)

    def close(self):
        with open(os.environ["CLOSE_LOG"], "a") as log:
            log.write(self.tag + "\n")


@route("close")
def closing(environ, start_response):
    a = args(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing(a["tag"], a["mode"])


@route("raise")
def raises(environ, start_response):
    raise ValueError("boom from the app " + args(environ).get("tag", ""))


@route("badstatus")
def bad_status(environ, start_response):
    start_response(args(environ)["s"], [("Content-Type", "text/plain")])
    return [b"should not be sent"]


@route("badheader")
def bad_header(environ, start_response):
    kind = args(environ)["kind"]
    header = {"newline": ("X-Bad", "a\nInjected: yes"), "nonstr": (42, "x")}[kind]
    start_response("200 OK", [("Content-Type", "text/plain"), header])
    return [b"should not be sent"]


@route("exit")
def exits(environ, start_response):
    sys.exit(3)


@route("twice")
def twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"should not be sent"]


@route("hop")
def hop_by_hop(environ, start_response):
    """?h=connection: Connection: keep-alive; ?h=te: Transfer-Encoding:
    chunked over a body that is not chunk-encoded."""
    header = {"connection": ("Connection", "keep-alive"),
              "te": ("Transfer-Encoding", "chunked")}[args(environ)["h"]]
    start_response("200 OK", [("Content-Type", "text/plain"), header])
    return [b"hop-", b"body"]


@route("sleep")
def sleep(environ, start_response):
    seconds = float(args(environ)["s"])
    environ["wsgi.errors"].write("sleep-start %s pid=%d\n" % (args(environ).get("tag", ""), os.getpid()))
    environ["wsgi.errors"].flush()
    time.sleep(seconds)
    return respond(start_response, str(os.getpid()))


@route("cpu")
def cpu(environ, start_response):
    deadline = time.time() + 60
    n = 0
    while time.time() < deadline:
        n += 1
    return respond(start_response, str(n))


@route("errors")
def errors(environ, start_response):
    environ["wsgi.errors"].write("wsgi.errors says %s\n" % args(environ)["msg"])
    environ["wsgi.errors"].flush()
    return respond(start_response, "logged")
