"""Reports which interpreter and which Flask serve it, for the install tests."""
import json
import sys

import flask


def app(environ, start_response):
    body = json.dumps({"executable": sys.executable, "prefix": sys.prefix,
                       "flask": flask.__file__}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
