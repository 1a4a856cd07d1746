"""The smallest app, reachable through every APP_MODULE form:
`hello` (the default name `application`), `hello:app`, `hello:create_app()`
and `hello:create_app('greeting')`."""


def _make(greeting):
    body = ("Hello, %s!\n" % greeting).encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app


app = _make("world")
application = _make("application")


def create_app(greeting="factory"):
    return _make(greeting)
