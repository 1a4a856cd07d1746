"""Serving: a hello-world app, a Flask app, every APP_MODULE form."""
import json
import re
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import pytest

from harness import server_fixture


hello = server_fixture("hello:app")
flask_server = server_fixture("flaskapp:app")


def test_hello_world_status_and_body(hello):
    """GET / answers 200 with the app's body and Content-Length."""
    status, headers, body = hello.get("/")
    assert status == 200
    assert body == b"Hello, world!\n"
    assert headers["Content-Length"] == str(len(body))
    assert headers["Content-Type"] == "text/plain"


def test_hello_world_server_date_connection_headers(hello):
    """The response carries Server: ferricorn, an RFC 7231 Date, and
    Connection: close (the sync worker never keeps connections alive)."""
    _, headers, _ = hello.get("/")
    assert headers["Server"] == "ferricorn"
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT", headers["Date"])
    assert parsedate_to_datetime(headers["Date"]).year >= 2024
    assert headers["Connection"].lower() == "close"
    assert len(headers.get_all("Server")) == 1 and len(headers.get_all("Date")) == 1


def test_flask_json_route(flask_server):
    """A Flask JSON view comes back with its JSON body and content type."""
    status, headers, body = flask_server.get("/json")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"items": [1, 2, 3], "name": "ferricorn"}


def test_flask_query_args(flask_server):
    """Query arguments, repeated and percent-encoded, reach request.args."""
    query = urlencode([("name", "Zoë & co"), ("tag", "a"), ("tag", "b")])
    status, _, body = flask_server.get("/greet?" + query)
    assert status == 200
    assert body.decode() == "Hello, Zoë & co (a,b)"


def test_flask_404(flask_server):
    """An unknown route gets Flask's own 404 page."""
    status, _, body = flask_server.get("/no/such/route")
    assert status == 404
    assert b"Not Found" in body


def test_flask_post_form(flask_server):
    """A urlencoded form POST is parsed by Flask (wsgi.input + CONTENT_*)."""
    form = urlencode({"user": "ana", "note": "x=y&z"})
    status, _, body = flask_server.request(
        "POST", "/form", body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    assert json.loads(body) == {"user": "ana", "note": "x=y&z"}


@pytest.mark.parametrize("spec, expected", [
    ("hello", b"Hello, application!\n"),
    ("hello:app", b"Hello, world!\n"),
    ("hello:create_app()", b"Hello, factory!\n"),
    ("hello:create_app('arg')", b"Hello, arg!\n"),
])
def test_app_spec_forms(spawn, spec, expected):
    """`mod` (attribute `application`), `mod:attr`, `mod:factory()` and
    `mod:factory('arg')` each load and serve the right callable."""
    server = spawn.start(spec)
    status, _, body = server.get("/")
    assert (status, body) == (200, expected)
