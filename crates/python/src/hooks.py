"""ferricorn's server hooks: resolving them and the objects they receive.

The objects are small stand-ins for gunicorn's Arbiter, Worker and Request:
only the attributes hooks commonly read (pid, age, cfg, method, path, …).
"""

import importlib
import time
import traceback
import types


def resolve(spec):
    """Returns the callable named by MODULE:CALLABLE (dotted attributes allowed)."""
    module_name, _, attr = spec.partition(":")
    target = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"hook {spec!r} is not callable")
    return target


class Server:
    """The master as hooks see it (gunicorn's `server`/arbiter argument)."""

    def __init__(self, pid, cfg):
        self.pid = pid
        self.cfg = cfg
        self.num_workers = cfg.workers
        self.proc_name = cfg.proc_name

    def __repr__(self):
        return f"<ferricorn.Server pid={self.pid}>"


class Worker:
    """A worker as hooks see it; `pid` is None before it is forked."""

    def __init__(self, pid, ppid, age, cfg):
        self.pid = pid
        self.ppid = ppid
        self.age = age
        self.cfg = cfg
        self.booted = False
        self.alive = True
        self.started = time.time()

    def __repr__(self):
        return f"<ferricorn.Worker pid={self.pid} age={self.age}>"


class Request:
    """The request given to pre_request/post_request."""

    def __init__(self, method, uri, path, query, version, headers):
        self.method = method
        self.uri = uri
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers

    def __repr__(self):
        return f"<ferricorn.Request {self.method} {self.uri}>"


class Response:
    """What post_request learns about the response."""

    def __init__(self, status_code):
        self.status_code = status_code
        self.status = str(status_code)


def config(**values):
    return types.SimpleNamespace(**values)


def environ(req):
    """The CGI part of the request's environ, for post_request."""
    return {
        "REQUEST_METHOD": req.method,
        "RAW_URI": req.uri,
        "PATH_INFO": req.path,
        "QUERY_STRING": req.query,
        "SERVER_PROTOCOL": req.version,
    }


class AsgiHooks:
    """pre_request/post_request around an ASGI app call, run on the
    worker's asyncio loop (as gunicorn 27's ASGI worker runs them), with
    the same arguments as for WSGI. `log(level, message)` reports what a
    hook raised."""

    def __init__(self, worker, pre, post):
        self.worker = worker
        self.pre = pre
        self.post = post

    def before(self, scope, log):
        query = scope["query_string"].decode("latin-1")
        path = scope["raw_path"].decode("latin-1")
        headers = [(name.decode("latin-1").upper(), value.decode("latin-1"))
                   for name, value in scope["headers"]]
        uri = path + "?" + query if query else path
        req = Request(scope["method"], uri, path, query, "HTTP/" + scope["http_version"], headers)
        if self.pre is not None:
            try:
                self.pre(self.worker, req)
            except BaseException:
                log(40, "Exception in pre_request hook:\n" + traceback.format_exc().rstrip())
        return req

    def after(self, req, status, log):
        if self.post is None:
            return
        try:
            self.post(self.worker, req, environ(req), Response(status))
        except BaseException:
            log(40, "Exception in post_request hook:\n" + traceback.format_exc().rstrip())
