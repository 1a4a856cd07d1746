"""Server hooks that append one line per call to $HOOK_LOG:
`<hook> <pid> <details>`. `raising_*` hooks raise."""
import os


def _log(name, *details):
    with open(os.environ["HOOK_LOG"], "a") as log:
        log.write(" ".join([name, str(os.getpid()), *map(str, details)]) + "\n")


def on_starting(server):
    _log("on_starting", server.pid, server.cfg.workers)


def on_reload(server):
    _log("on_reload", server.pid)


def when_ready(server):
    _log("when_ready", server.pid)


def pre_fork(server, worker):
    _log("pre_fork", worker.pid, worker.age)


def post_fork(server, worker):
    _log("post_fork", worker.pid, worker.age, server.pid)


def post_worker_init(worker):
    _log("post_worker_init", worker.pid)


def worker_int(worker):
    _log("worker_int", worker.pid)


def worker_abort(worker):
    _log("worker_abort", worker.pid)


def pre_exec(server):
    _log("pre_exec", server.pid)


def pre_request(worker, req):
    _log("pre_request", req.method, req.path, req.query,
         dict(req.headers).get("X-HOOK", "-"))


def post_request(worker, req, environ, resp):
    _log("post_request", req.method, environ["PATH_INFO"], resp.status_code)


def child_exit(server, worker):
    _log("child_exit", worker.pid, worker.age)


def worker_exit(server, worker):
    _log("worker_exit", worker.pid)


def nworkers_changed(server, new_value, old_value):
    _log("nworkers_changed", new_value, old_value)


def on_exit(server):
    _log("on_exit", server.pid)


def raising(*args):
    raise RuntimeError("hook failed on purpose")
