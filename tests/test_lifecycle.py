"""The master's lifecycle under continuous load: HUP (reload config and
code), TTIN/TTOU, max_requests and max_worker_memory recycling. Every
worker replacement is phased (the new worker is ready before the old one is
told to stop), so the load must see zero failed requests and zero non-2xx.
"""
import re
import signal
import textwrap

from harness import BOOTING_RE
from load import Load

# The access log (on stdout) tells which worker served each request.
ACCESS = ["--access-logfile", "-", "--access-logformat", "%(p)s %(s)s"]
RELOAD_TIMEOUT = 30
NO_PYC = {"PYTHONDONTWRITEBYTECODE": "1"}


def served(server, count, pids=None, timeout=20):
    """Waits until `count` more requests were served (by one of `pids`)."""
    who = r"\d+" if pids is None else "|".join(str(p) for p in pids)
    start = len(server.stdout.lines)
    server.stdout.wait_for(r"^<(%s)> 200$" % who, timeout=timeout, start=start, count=count)


def booted_since(server, mark, count):
    found = server.stderr.wait_for(BOOTING_RE.pattern, timeout=RELOAD_TIMEOUT,
                                   start=mark, count=count)
    return {int(m.group(1)) for m in found}


def wait_exited(server, pids, mark):
    for pid in pids:
        server.stderr.wait_for(r"Worker exiting \(pid: %d\)" % pid, timeout=RELOAD_TIMEOUT,
                               start=mark)


def assert_clean(result):
    assert result.total > 200, result
    assert result.failed == 0, result
    assert result.non_2xx == 0, result


def url(server):
    return "http://127.0.0.1:%d/" % server.port


def test_hup_replaces_every_worker_under_load(spawn):
    """-w 2 under 200 connections of load, HUP: `Hang up: Master`, two new
    workers boot, both old ones exit, the new ones serve, and the load sees
    no failure and no non-2xx."""
    server = spawn.start("lifecycle:application", args=["-w", "2", *ACCESS], workers=2)
    old = set(server.booted_pids())
    with Load(url(server)) as load:
        served(server, 200)
        mark = server.mark()
        server.signal(signal.SIGHUP)
        server.stderr.wait_for("Handling signal: hup", start=mark)
        server.stderr.wait_for("Hang up: Master", start=mark)
        new = booted_since(server, mark, 2)
        wait_exited(server, old, mark)
        served(server, 100, pids=new)
        assert load.running()
        result = load.finish()
    assert_clean(result)
    print("HUP under load:", result)


def write_app(directory, version, broken=False):
    raise_line = "raise RuntimeError('broken on purpose %s')\n" % version if broken else ""
    (directory / "reloadable.py").write_text(textwrap.dedent("""\
        %sVERSION = %r

        def application(environ, start_response):
            body = VERSION.encode()
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
        """) % (raise_line, version))


def test_hup_rereads_config_file_and_code(spawn, tmp_path):
    """HUP re-reads the TOML file (workers 1 -> 2) and re-imports the app:
    the new workers answer with the new code."""
    write_app(tmp_path, "v1")
    config = tmp_path / "ferricorn.toml"
    config.write_text("workers = 1\n")
    server = spawn.start("reloadable:application", env=NO_PYC,
                         args=["-c", str(config), "--chdir", str(tmp_path)])
    assert server.get("/")[2] == b"v1"
    old = set(server.booted_pids())
    write_app(tmp_path, "v2")
    config.write_text("workers = 2\n")
    mark = server.mark()
    server.signal(signal.SIGHUP)
    booted_since(server, mark, 2)
    wait_exited(server, old, mark)
    assert {server.get("/")[2] for _ in range(10)} == {b"v2"}


def test_hup_with_broken_code_keeps_the_old_workers(spawn, tmp_path):
    """HUP after the app was broken: the new worker exits 4, the error is
    logged, the old worker keeps serving the old code and the master stays
    up; after a fix, the next HUP rolls the new code out."""
    write_app(tmp_path, "v1")
    server = spawn.start("reloadable:application", env=NO_PYC,
                         args=["--chdir", str(tmp_path)])
    old = server.booted_pids()
    write_app(tmp_path, "v2", broken=True)
    mark = server.mark()
    server.signal(signal.SIGHUP)
    server.stderr.wait_for("broken on purpose v2", start=mark, timeout=RELOAD_TIMEOUT)
    server.stderr.wait_for(r"exited with code 4: App failed to load\. The running workers "
                           r"keep serving", start=mark, timeout=RELOAD_TIMEOUT)
    assert server.proc.poll() is None
    assert server.get("/")[2] == b"v1"
    assert "Worker exiting (pid: %d)" % old[0] not in server.log(mark)
    write_app(tmp_path, "v3")
    mark = server.mark()
    server.signal(signal.SIGHUP)
    booted_since(server, mark, 1)
    wait_exited(server, old, mark)
    assert server.get("/")[2] == b"v3"


def test_ttin_ttou_under_load(spawn):
    """TTIN adds a worker, TTOU retires the oldest, TTOU at one worker does
    nothing; the load sees no failure and no non-2xx."""
    server = spawn.start("lifecycle:application", args=["-w", "2", *ACCESS], workers=2)
    first = server.booted_pids()
    with Load(url(server)) as load:
        served(server, 200)
        mark = server.mark()
        server.signal(signal.SIGTTIN)
        third = booted_since(server, mark, 1)
        served(server, 20, pids=third)
        mark = server.mark()
        server.signal(signal.SIGTTOU)
        wait_exited(server, [min(first)], mark)
        mark = server.mark()
        server.signal(signal.SIGTTOU)
        wait_exited(server, [max(first)], mark)
        served(server, 100, pids=third)
        mark = server.mark()
        server.signal(signal.SIGTTOU)  # one worker left: ignored
        server.stderr.wait_for("Handling signal: ttou", start=mark)
        served(server, 100, pids=third)
        assert load.running()
        result = load.finish()
    assert "Worker exiting (pid: %d)" % min(third) not in server.log()
    assert_clean(result)
    print("TTIN/TTOU under load:", result)


def test_max_requests_recycles_under_load(spawn):
    """--max-requests 50 --max-requests-jitter 10, -w 2: workers are
    replaced again and again (`Autorestarting worker after current
    request.`), and the load sees no failure and no non-2xx."""
    server = spawn.start("lifecycle:application", workers=2,
                         args=["-w", "2", "--max-requests", "50", "--max-requests-jitter", "10",
                               *ACCESS])
    first = server.booted_pids()
    with Load(url(server)) as load:
        mark = server.mark()
        server.stderr.wait_for(r"Autorestarting worker after current request\. \(pid:\d+, "
                               r"\d+ requests\)", start=mark, count=4, timeout=RELOAD_TIMEOUT)
        wait_exited(server, first, mark)
        new = booted_since(server, mark, 4)
        served(server, 50, pids=new)
        assert load.running()
        result = load.finish()
    assert_clean(result)
    print("max_requests 50 under load:", result)


def worker_rss_mb(server):
    return int(server.get("/rss")[2])


def test_memory_recycle_under_load(spawn):
    """--max-worker-memory 60 MB above a worker's resident size: after that
    worker grows by 100 MB it is replaced (logged with its size), and the
    load sees no failure and no non-2xx."""
    probe = spawn.start("lifecycle:application")
    limit = worker_rss_mb(probe) + 60
    probe.stop()
    server = spawn.start("lifecycle:application", workers=2,
                         args=["-w", "2", "--max-worker-memory", str(limit), *ACCESS])
    with Load(url(server)) as load:
        served(server, 100)
        mark = server.mark()
        status, _, body = server.get("/grow?mb=100")
        assert status == 200, body
        found = server.stderr.wait_for(
            r"Autorestarting worker after current request\. \(pid:(\d+), memory (\d+) MB over "
            r"max_worker_memory %d MB\)" % limit, start=mark, timeout=RELOAD_TIMEOUT)[0]
        grown = int(found.group(1))
        assert int(found.group(2)) > limit
        new = booted_since(server, mark, 1)
        wait_exited(server, [grown], mark)
        served(server, 50, pids=new)
        assert load.running()
        result = load.finish()
    assert_clean(result)
    print("memory recycle under load:", result)
