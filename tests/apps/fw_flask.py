"""The framework-matrix routes (see fw_common) in Flask."""
import json

from flask import Flask, Response, jsonify, request, send_file

from fw_common import (APP_DATE, APP_SERVER, EURO_VALUE, LATIN1_VALUE, boom_message,
                       digest_stream, file_path, read_all, stream_parts, validated, with_static)

NAME = "flask"
flask_app = Flask(__name__)


@flask_app.route("/")
def index():
    return "ok"


@flask_app.post("/json")
def json_echo():
    # Not request.get_json(): with wsgi.input_terminated set, Werkzeug reads
    # the raw input with read() and no size, which wsgiref.validate rejects
    # (gunicorn answers that 500 under the validator).
    return jsonify(framework=NAME, echo=json.loads(read_all(request.stream.read)))


@flask_app.post("/upload")
def upload():
    upload = request.files["file"]
    size, sha = digest_stream(upload.stream.read)
    return jsonify(filename=upload.filename, size=size, sha256=sha)


@flask_app.post("/chunked-len")
def chunked_len():
    # request.stream is empty for a chunked body unless the server sets
    # environ["wsgi.input_terminated"].
    size, sha = digest_stream(request.stream.read)
    return jsonify(len=size, sha256=sha)


@flask_app.get("/stream")
def stream():
    return Response(stream_parts(), mimetype="text/plain")


@flask_app.get("/file")
def file():
    return send_file(file_path(), mimetype="application/octet-stream")


@flask_app.get("/raise")
def boom():
    raise RuntimeError(boom_message(NAME))


@flask_app.get("/hdr-latin1")
def hdr_latin1():
    return "latin1", {"X-Name": LATIN1_VALUE}


@flask_app.get("/hdr-euro")
def hdr_euro():
    return "euro", {"X-Price": EURO_VALUE}


@flask_app.get("/server-date")
def server_date():
    return "server-date", {"Server": APP_SERVER, "Date": APP_DATE}


@flask_app.get("/close")
def close():
    return "closing", {"Connection": "close"}


@flask_app.get("/secure")
def secure():
    return jsonify(secure=request.is_secure, url_scheme=request.environ["wsgi.url_scheme"])


app = with_static(flask_app)
validated_app = validated(app)
