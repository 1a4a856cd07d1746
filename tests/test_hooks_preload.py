"""Server hooks (Python callables named in the TOML file or FERRICORN_<HOOK>)
and --preload (the app imported once in the master, every fork wrapped in
CPython's fork handlers)."""
import json
import os
import re
import signal
import threading
import time

from harness import IO_TIMEOUT, run_ferricorn

ALL_HOOKS = ["on_starting", "on_reload", "when_ready", "pre_fork", "post_fork",
             "post_worker_init", "worker_int", "worker_abort", "pre_exec",
             "pre_request", "post_request", "child_exit", "worker_exit",
             "nworkers_changed", "on_exit"]


def hook_config(tmp_path, overrides=None):
    lines = ['%s = "hookmod:%s"' % (name, (overrides or {}).get(name, name))
             for name in ALL_HOOKS]
    path = tmp_path / "hooks.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def wait_lines(path, pattern, count=1, timeout=IO_TIMEOUT * 2):
    """Polls the hook log until `count` lines match `pattern`; returns them."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    found = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as log:
                found = [m for m in map(regex.search, log.read().splitlines()) if m]
            if len(found) >= count:
                return found
        time.sleep(0.02)
    text = open(path).read() if os.path.exists(path) else "(no file)"
    raise AssertionError("no %d lines matching %r in hook log:\n%s" % (count, pattern, text))


def test_every_hook_runs_with_gunicorns_arguments(spawn, tmp_path):
    """All fifteen hooks from the TOML file: on_starting/when_ready in the
    master at start; pre_fork (pid None), post_fork and post_worker_init
    per worker; pre_request/post_request around a request (method, path,
    query, headers, status); TTIN → nworkers_changed and a new worker; HUP
    → on_reload (and back to one worker); INT to a worker → worker_int; TERM → worker_exit,
    child_exit, on_exit."""
    log = str(tmp_path / "hooks.log")
    server = spawn.start("hello:app", args=["-c", hook_config(tmp_path)],
                         env={"HOOK_LOG": log})
    master = server.proc.pid
    worker = server.booted_pids()[0]
    wait_lines(log, r"^on_starting %d %d 1$" % (master, master))
    wait_lines(log, r"^when_ready %d %d$" % (master, master))
    wait_lines(log, r"^pre_fork %d None 1$" % master)
    wait_lines(log, r"^post_fork %d %d 1 %d$" % (worker, worker, master))
    wait_lines(log, r"^post_worker_init %d %d$" % (worker, worker))

    status, _, _ = server.request("GET", "/some/path?a=1", headers={"X-Hook": "yes"})
    assert status == 200
    wait_lines(log, r"^pre_request %d GET /some/path a=1 yes$" % worker)
    wait_lines(log, r"^post_request %d GET /some/path 200$" % worker)

    mark = server.mark()
    server.signal(signal.SIGTTIN)
    second = int(server.stderr.wait_for(r"Booting worker with pid: (\d+)", start=mark)[0].group(1))
    wait_lines(log, r"^nworkers_changed %d 2 1$" % master)
    wait_lines(log, r"^post_fork %d %d 2 %d$" % (second, second, master))

    mark = server.mark()
    server.signal(signal.SIGHUP)
    wait_lines(log, r"^on_reload %d %d$" % (master, master))
    # The reloaded configuration says one worker again (TTIN is undone).
    wait_lines(log, r"^nworkers_changed %d 1 2$" % master)
    booted = server.stderr.wait_for(r"Booting worker with pid: (\d+)", start=mark)
    for old in (worker, second):
        server.stderr.wait_for(r"Worker exiting \(pid: %d\)" % old, start=mark)

    # INT to a worker: worker_int runs in it before it exits.
    current = int(booted[0].group(1))
    wait_lines(log, r"^post_worker_init %d" % current)
    os.kill(current, signal.SIGINT)
    wait_lines(log, r"^worker_int %d %d$" % (current, current))
    wait_lines(log, r"^child_exit %d %d \d+$" % (master, current))

    assert server.stop() == 0
    wait_lines(log, r"^worker_exit \d+ \d+$")
    wait_lines(log, r"^on_exit %d %d$" % (master, master))


def test_hooks_from_environment(spawn, tmp_path):
    """FERRICORN_PRE_REQUEST names a hook too; only worker hooks set: the
    master stays without Python and the request hook still runs."""
    log = str(tmp_path / "hooks.log")
    server = spawn.start("hello:app", env={"HOOK_LOG": log,
                                           "FERRICORN_PRE_REQUEST": "hookmod:pre_request"})
    assert server.get("/env")[0] == 200
    wait_lines(log, r"^pre_request \d+ GET /env  -$")


def test_request_hooks_run_around_asgi_requests(spawn, tmp_path):
    """-k async with an ASGI app: pre_request and post_request run around
    every HTTP request with gunicorn's arguments (method, raw path, query,
    upper-cased headers; the status, 500 for an app that raised before
    starting its response), and a raising hook is logged while the request
    still gets its answer."""
    log = str(tmp_path / "hooks.log")
    server = spawn.start("asgiraw:app", args=["-k", "async", "-c", hook_config(tmp_path)],
                         env={"HOOK_LOG": log})
    worker = server.booted_pids()[0]
    status, _, _ = server.request("GET", "/some/path/scope?a=1", headers={"X-Hook": "yes"})
    assert status == 200
    wait_lines(log, r"^pre_request %d GET /some/path/scope a=1 yes$" % worker)
    wait_lines(log, r"^post_request %d GET /some/path/scope 200$" % worker)
    assert server.get("/raise-before")[0] == 500
    wait_lines(log, r"^post_request %d GET /raise-before 500$" % worker)

    config = hook_config(tmp_path, {"pre_request": "raising", "post_request": "raising"})
    raising = spawn.start("asgiraw:app", args=["-k", "async", "-c", config],
                          env={"HOOK_LOG": log})
    assert raising.get("/a/scope")[0] == 200
    raising.stderr.wait_for(r"Exception in pre_request hook")
    raising.stderr.wait_for(r"Exception in post_request hook")
    raising.stderr.wait_for(r"RuntimeError: hook failed on purpose", count=2)


def test_a_raising_hook_is_logged_and_the_server_keeps_serving(spawn, tmp_path):
    """pre_request, post_request and when_ready raise: each traceback is
    logged, the request still gets its 200."""
    log = str(tmp_path / "hooks.log")
    config = hook_config(tmp_path, {"pre_request": "raising", "post_request": "raising",
                                    "when_ready": "raising"})
    server = spawn.start("hello:app", args=["-c", config], env={"HOOK_LOG": log})
    server.stderr.wait_for(r"Exception in when_ready hook")
    status, _, body = server.get("/")
    assert status == 200 and body == b"Hello, world!\n"
    server.stderr.wait_for(r"Exception in pre_request hook")
    server.stderr.wait_for(r"Exception in post_request hook")
    server.stderr.wait_for(r"RuntimeError: hook failed on purpose", count=3)


def test_on_starting_that_raises_stops_startup(ferricorn_bin, tmp_path):
    """on_starting raising: the traceback is logged and the master exits 1
    before binding."""
    config = tmp_path / "h.toml"
    config.write_text('on_starting = "hookmod:raising"\n')
    result = run_ferricorn(ferricorn_bin, ["-c", str(config), "-b", "127.0.0.1:0", "hello:app"])
    assert result.returncode == 1, result
    assert "Exception in on_starting hook" in result.stderr
    assert "RuntimeError: hook failed on purpose" in result.stderr
    assert "Listening at" not in result.stderr


def test_a_hook_that_cannot_be_imported_is_an_error(ferricorn_bin, tmp_path):
    """A hook naming a missing module stops startup with the import error."""
    config = tmp_path / "h.toml"
    config.write_text('on_exit = "no_such_module:hook"\n')
    result = run_ferricorn(ferricorn_bin, ["-c", str(config), "-b", "127.0.0.1:0", "hello:app"])
    assert result.returncode == 1, result
    assert "ModuleNotFoundError" in result.stderr


def concurrent_slow(server, count=2):
    """`count` simultaneous /slow requests (each keeps a sync worker busy,
    so they land on different workers); returns the decoded bodies."""
    results = [None] * count

    def fetch(index):
        status, _, body = server.get("/slow")
        assert status == 200
        results[index] = json.loads(body)
    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(IO_TIMEOUT * 2)
    assert all(results), results
    return results


def test_preload_imports_once_in_the_master_and_reseeds_random(spawn):
    """--preload -w 2: the app module was imported by the master (not by
    the workers), and the two workers drew different first random numbers
    (PyOS_AfterFork_Child reseeded `random`)."""
    server = spawn.start("preloadapp:application", args=["--preload", "-w", "2"], workers=2)
    bodies = concurrent_slow(server)
    assert {b["pid"] for b in bodies} == set(server.booted_pids())
    assert {b["imported_in"] for b in bodies} == {server.proc.pid}
    assert bodies[0]["random"] != bodies[1]["random"], bodies


def test_preload_with_gthread_and_hup(spawn):
    """--preload with gthread (app threads attach to the inherited
    interpreter): serves; a HUP replaces the workers, which keep using the
    master's import."""
    server = spawn.start("preloadapp:application",
                         args=["--preload", "-k", "gthread", "--threads", "4"])
    first = json.loads(server.get("/")[2])
    assert first["imported_in"] == server.proc.pid
    mark = server.mark()
    server.signal(signal.SIGHUP)
    server.stderr.wait_for(r"Booting worker with pid: (\d+)", start=mark)
    server.stderr.wait_for(r"Worker exiting \(pid: %d\)" % first["pid"], start=mark)
    second = json.loads(server.get("/")[2])
    assert second["pid"] != first["pid"]
    assert second["imported_in"] == server.proc.pid


def test_without_preload_each_worker_imports(spawn):
    """The control: without --preload the worker imports the app itself."""
    server = spawn.start("preloadapp:application")
    body = json.loads(server.get("/")[2])
    assert body["imported_in"] == body["pid"] != server.proc.pid


def test_preload_failure_exits_4(ferricorn_bin):
    """--preload with an app that cannot be imported: exit 4 with the error."""
    result = run_ferricorn(ferricorn_bin, ["--preload", "-b", "127.0.0.1:0", "badimport:app"])
    assert result.returncode == 4, result
    assert "Failed to load application" in result.stderr
