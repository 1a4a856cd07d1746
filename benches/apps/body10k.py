"""A 10 KB response body, built once at import."""

BODY = (b"0123456789abcdef" * 640)[:10240]
LENGTH = str(len(BODY))


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", LENGTH)])
    return [BODY]
