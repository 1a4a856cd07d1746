"""What the framework-matrix apps (fw_flask, fw_django, fw_falcon,
fw_bottle) share: the values their routes answer with, where their files
are, the WhiteNoise wrapper and the streaming generator.

Each app serves the same routes with its framework's own API:
  GET  /             "ok" (readiness)
  POST /json         {"framework", "echo": the parsed JSON body}
  POST /upload       multipart field "file": {"filename", "size", "sha256"}
  POST /chunked-len  the whole body however framed: {"len", "sha256"}
  GET  /stream       STREAM_PARTS, yielded one by one
  GET  /file         the framework's send_file/FileResponse of $FW_FILE
  GET  /raise        raises RuntimeError(boom message)
  GET  /hdr-latin1   X-Name: LATIN1_VALUE
  GET  /hdr-euro     X-Price: EURO_VALUE (not latin-1)
  GET  /server-date  the app's own Server and Date headers
  GET  /close        Connection: close set by the app
  GET  /secure       {"secure": the framework's view, "url_scheme": environ's}
  GET  /static/...   WhiteNoise over $FW_STATIC (wrapping every app)
"""
import hashlib
import os

LATIN1_VALUE = "caf\u00e9"
EURO_VALUE = "5 \u20ac"
APP_SERVER = "fw-app/1.0"
APP_DATE = "Sat, 01 Jan 2000 00:00:00 GMT"
STREAM_PARTS = [("part %d " % i).encode() + b"x" * 4000 + b"\n" for i in range(8)]
READ_BLOCK = 65536


def boom_message(framework):
    """The message of the exception /raise raises (grep the log for it)."""
    return "fw-boom-%s-traceback-marker" % framework


def file_path():
    """The big file /file sends ($FW_FILE, made by the test)."""
    return os.environ["FW_FILE"]


def static_root():
    """The directory WhiteNoise serves under /static/ ($FW_STATIC)."""
    return os.environ["FW_STATIC"]


def stream_parts():
    yield from STREAM_PARTS


def digest_stream(read):
    """Reads `read(READ_BLOCK)` to EOF: (length, sha256 hex). Always passes
    a size, as wsgiref.validate requires of wsgi.input.read."""
    sha, total = hashlib.sha256(), 0
    while True:
        block = read(READ_BLOCK)
        if not block:
            return total, sha.hexdigest()
        sha.update(block)
        total += len(block)


def read_all(read):
    """Reads `read(READ_BLOCK)` to EOF and returns the bytes (a sized read,
    for the same reason as digest_stream)."""
    blocks = []
    while True:
        block = read(READ_BLOCK)
        if not block:
            return b"".join(blocks)
        blocks.append(block)


def with_static(app):
    """`app` behind WhiteNoise serving static_root() at /static/."""
    from whitenoise import WhiteNoise
    return WhiteNoise(app, root=static_root(), prefix="static/")


def validated(app):
    """`app` wrapped in wsgiref.validate.validator."""
    from wsgiref.validate import validator
    return validator(app)
