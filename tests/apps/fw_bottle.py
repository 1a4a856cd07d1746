"""The framework-matrix routes (see fw_common) in Bottle."""
import os

import bottle
from bottle import request, response, static_file

from fw_common import (APP_DATE, APP_SERVER, EURO_VALUE, LATIN1_VALUE, boom_message,
                       digest_stream, file_path, stream_parts, validated, with_static)

NAME = "bottle"
bottle_app = bottle.Bottle()


@bottle_app.get("/")
def index():
    return "ok"


@bottle_app.post("/json")
def json_echo():
    return {"framework": NAME, "echo": request.json}


@bottle_app.post("/upload")
def upload():
    upload = request.files.get("file")
    size, sha = digest_stream(upload.file.read)
    return {"filename": upload.raw_filename, "size": size, "sha256": sha}


@bottle_app.post("/chunked-len")
def chunked_len():
    # Bottle's request.body decodes chunked framing itself whenever
    # HTTP_TRANSFER_ENCODING says chunked, which fails on the already
    # decoded wsgi.input that servers (gunicorn too) give; so read
    # wsgi.input directly, to EOF.
    size, sha = digest_stream(request.environ["wsgi.input"].read)
    return {"len": size, "sha256": sha}


@bottle_app.get("/stream")
def stream():
    response.content_type = "text/plain"
    return stream_parts()


@bottle_app.get("/file")
def file():
    path = file_path()
    return static_file(os.path.basename(path), root=os.path.dirname(path),
                       mimetype="application/octet-stream")


@bottle_app.get("/raise")
def boom():
    raise RuntimeError(boom_message(NAME))


@bottle_app.get("/hdr-latin1")
def hdr_latin1():
    response.set_header("X-Name", LATIN1_VALUE)
    return "latin1"


@bottle_app.get("/hdr-euro")
def hdr_euro():
    response.set_header("X-Price", EURO_VALUE)
    return "euro"


@bottle_app.get("/server-date")
def server_date():
    response.set_header("Server", APP_SERVER)
    response.set_header("Date", APP_DATE)
    return "server-date"


@bottle_app.get("/close")
def close():
    response.set_header("Connection", "close")
    return "closing"


@bottle_app.get("/secure")
def secure():
    return {"secure": request.urlparts.scheme == "https",
            "url_scheme": request.environ["wsgi.url_scheme"]}


app = with_static(bottle_app)
validated_app = validated(app)
