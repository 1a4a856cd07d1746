"""The framework-matrix routes (see fw_common) in Falcon."""
import os

import falcon

from fw_common import (APP_DATE, APP_SERVER, EURO_VALUE, LATIN1_VALUE, boom_message,
                       digest_stream, file_path, stream_parts, validated, with_static)

NAME = "falcon"


class Index:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "ok"


class Json:
    def on_post(self, req, resp):
        resp.media = {"framework": NAME, "echo": req.get_media()}


class Upload:
    def on_post(self, req, resp):
        for part in req.get_media():
            if part.name == "file":
                size, sha = digest_stream(part.stream.read)
                resp.media = {"filename": part.filename, "size": size, "sha256": sha}
                return
        raise falcon.HTTPBadRequest(title="no file part")


class ChunkedLen:
    def on_post(self, req, resp):
        # req.bounded_stream stops at Content-Length (0 when chunked);
        # req.stream is wsgi.input itself, which ends where the body ends.
        size, sha = digest_stream(req.stream.read)
        resp.media = {"len": size, "sha256": sha}


class Stream:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = stream_parts()


class File:
    def on_get(self, req, resp):
        path = file_path()
        resp.content_type = "application/octet-stream"
        resp.content_length = os.path.getsize(path)
        resp.stream = open(path, "rb")


class Raise:
    def on_get(self, req, resp):
        raise RuntimeError(boom_message(NAME))


class Header:
    def __init__(self, body, **headers):
        self.body, self.headers = body, headers

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        for name, value in self.headers.items():
            resp.set_header(name.replace("_", "-"), value)
        resp.text = self.body


class Secure:
    def on_get(self, req, resp):
        resp.media = {"secure": req.scheme == "https", "url_scheme": req.env["wsgi.url_scheme"]}


falcon_app = falcon.App()
falcon_app.add_route("/", Index())
falcon_app.add_route("/json", Json())
falcon_app.add_route("/upload", Upload())
falcon_app.add_route("/chunked-len", ChunkedLen())
falcon_app.add_route("/stream", Stream())
falcon_app.add_route("/file", File())
falcon_app.add_route("/raise", Raise())
falcon_app.add_route("/hdr-latin1", Header("latin1", X_Name=LATIN1_VALUE))
falcon_app.add_route("/hdr-euro", Header("euro", X_Price=EURO_VALUE))
falcon_app.add_route("/server-date", Header("server-date", Server=APP_SERVER, Date=APP_DATE))
falcon_app.add_route("/close", Header("closing", Connection="close"))
falcon_app.add_route("/secure", Secure())

app = with_static(falcon_app)
validated_app = validated(app)
