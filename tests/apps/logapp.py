"""An app for the access-log, request-target and url-scheme tests.

Every request answers with a JSON object of the environ keys the tests
compare with gunicorn's, behind a middleware that stores a request id in
the environ (as request-id middlewares do) for `%({REQUEST_ID}e)s`.
Routes: `/empty` answers with an empty body, `/quote` sets response
headers holding `"` and a control character, anything else echoes.
"""
import json

KEYS = ["REQUEST_METHOD", "PATH_INFO", "RAW_URI", "QUERY_STRING", "HTTP_HOST",
        "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME", "wsgi.url_scheme"]


def echo(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/empty":
        body = b""
    else:
        body = json.dumps({key: environ.get(key) for key in KEYS}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if path == "/quote":
        headers.append(("X-Out", 'say "hi"'))
    start_response("200 OK", headers)
    return [body]


def request_id(app):
    def middleware(environ, start_response):
        environ["REQUEST_ID"] = environ.get("HTTP_X_REQUEST_ID", "rid-7")
        return app(environ, start_response)
    return middleware


application = request_id(echo)
