"""--reload: a changed module of the app (or a --reload-extra-file match)
replaces the workers the HUP way; the new code serves."""
import os
import textwrap
import time

import pytest

from harness import run_ferricorn

ENGINES = ["poll", "inotify", "auto"]

APP = textwrap.dedent("""
    from reloadhelper import VERSION

    def app(environ, start_response):
        body = VERSION.encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
""")


def write_module(path, text):
    """Writes `text` with an mtime clearly after the previous one."""
    previous = os.stat(path).st_mtime if os.path.exists(path) else 0
    path.write_text(text)
    stamp = max(time.time(), previous + 2)
    os.utime(path, (stamp, stamp))


def start(spawn, tmp_path, *extra):
    (tmp_path / "reloadapp.py").write_text(APP)
    write_module(tmp_path / "reloadhelper.py", 'VERSION = "one"\n')
    return spawn.start("reloadapp:app", args=["--chdir", str(tmp_path), "--reload", *extra],
                       env={"PYTHONDONTWRITEBYTECODE": "1"})


@pytest.mark.parametrize("engine", ENGINES)
def test_changed_module_reloads_workers(spawn, tmp_path, engine):
    """Editing a module the app imported: `Worker reloading: … modified`, a
    new worker boots, the old one exits, and the new code answers, with
    every --reload-engine."""
    server = start(spawn, tmp_path, "--reload-engine", engine)
    old = server.booted_pids()[0]
    assert server.get("/")[2] == b"one"
    # The worker reports its modules once loaded; give the master a poll.
    mark = server.mark()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        write_module(tmp_path / "reloadhelper.py", 'VERSION = "two"\n')
        try:
            server.stderr.wait_for(r"Worker reloading: .*reloadhelper\.py modified",
                                   start=mark, timeout=2.5)
            break
        except AssertionError:
            continue
    server.stderr.wait_for(r"Worker exiting \(pid: %d\)" % old, start=mark, timeout=10)
    assert server.get("/")[2] == b"two"


@pytest.mark.parametrize("engine", ENGINES)
def test_extra_file_glob_reloads_workers(spawn, tmp_path, engine):
    """--reload-extra-file with a ** glob: touching a matching file that is
    not Python replaces the workers, with every --reload-engine."""
    templates = tmp_path / "templates" / "pages"
    templates.mkdir(parents=True)
    page = templates / "index.html"
    page.write_text("<p>one</p>")
    server = start(spawn, tmp_path, "--reload-engine", engine,
                   "--reload-extra-file", str(tmp_path / "templates/**/*.html"))
    old = server.booted_pids()[0]
    mark = server.mark()
    stamp = time.time() + 5
    os.utime(page, (stamp, stamp))
    server.stderr.wait_for(r"Worker reloading: .*index\.html modified", start=mark, timeout=10)
    server.stderr.wait_for(r"Worker exiting \(pid: %d\)" % old, start=mark, timeout=10)
    assert server.get("/")[0] == 200


def test_reload_excludes_preload(ferricorn_bin):
    """--reload with --preload is refused (exit 2)."""
    result = run_ferricorn(ferricorn_bin, ["--reload", "--preload", "-b", "127.0.0.1:0",
                                           "hello:app"])
    assert result.returncode == 2, result
    assert "--reload and --preload cannot be combined" in result.stderr


def test_inotify_engine_sees_changes_mtimes_hide(spawn, tmp_path):
    """--reload-engine inotify reacts to the write itself: a file rewritten
    and given back its old mtime (invisible to the poll engine, which only
    compares mtimes) still replaces the workers."""
    page = tmp_path / "page.html"
    page.write_text("<p>one</p>")
    server = start(spawn, tmp_path, "--reload-engine", "inotify",
                   "--reload-extra-file", str(page))
    old = server.booted_pids()[0]
    before = os.stat(page)
    mark = server.mark()
    page.write_text("<p>two</p>")
    os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(page).st_mtime_ns == before.st_mtime_ns
    server.stderr.wait_for(r"Worker reloading: .*page\.html modified", start=mark, timeout=10)
    server.stderr.wait_for(r"Worker exiting \(pid: %d\)" % old, start=mark, timeout=10)


def test_reload_engine_spellings(ferricorn_bin):
    """--reload-engine takes gunicorn's auto, poll and inotify; anything else
    stops startup naming the flag and the choices."""
    for engine in ENGINES:
        result = run_ferricorn(ferricorn_bin, ["--reload", "--reload-engine", engine,
                                               "--check-config", "hello:app"])
        assert result.returncode == 0, (engine, result.stderr)
    result = run_ferricorn(ferricorn_bin, ["--reload-engine", "watchman", "hello:app"])
    assert result.returncode == 2
    assert "--reload-engine" in result.stderr
    assert "expected auto, poll or inotify" in result.stderr
