"""Responses for the slow-client tests: a 20 MB file (wsgi.file_wrapper)
and a 20 MB iterable whose close() is logged, a body reader, a probe."""
import os

CHUNK = b"x" * 65536
BIG = 20 * 1024 * 1024
BIG_FILE = os.environ.get("SLOW_FILE", "")


class Chunks:
    """A 20 MB iterable; close() reports how far the server pulled it."""

    def __init__(self, errors, tag):
        self.errors, self.tag, self.pulled = errors, tag, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.pulled >= BIG:
            raise StopIteration
        self.pulled += len(CHUNK)
        return CHUNK

    def close(self):
        self.errors.write("slowapp-closed tag=%s pulled=%d\n" % (self.tag, self.pulled))


def application(environ, start_response):
    path = environ["PATH_INFO"]
    tag = environ.get("QUERY_STRING", "")
    if path == "/big-file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(BIG_FILE, "rb"))
    if path == "/big-iter":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(BIG))])
        return Chunks(environ["wsgi.errors"], tag)
    if path == "/upload":
        try:
            data = environ["wsgi.input"].read()
        except OSError as error:
            environ["wsgi.errors"].write("slowapp-read-error tag=%s %s\n" % (tag, error))
            raise
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(data)).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
