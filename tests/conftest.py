"""Fixtures for the end-to-end suite: the command (installed once), servers that
are always stopped, and their logs attached to failing tests."""
import os
import subprocess
import time

import pytest

from harness import ALL_SERVERS, REPO_DIR, ServerPool

BUILD_TIMEOUT = 1800  # a cold wheel build, possibly behind someone else's cargo lock


@pytest.fixture(scope="session")
def ferricorn_bin():
    """The ferricorn command: $FERRICORN_BIN, else the wheel built and
    installed into a fresh venv by tests/install.sh."""
    binary = os.environ.get("FERRICORN_BIN")
    if binary:
        binary = os.path.abspath(binary)  # servers run in tests/apps
        assert os.access(binary, os.X_OK), "FERRICORN_BIN=%s is not executable" % binary
        return binary
    install = subprocess.run(
        ["bash", os.path.join(REPO_DIR, "tests", "install.sh")],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert install.returncode == 0, "tests/install.sh failed:\n" + install.stderr[-5000:]
    return install.stdout.splitlines()[-1]


@pytest.fixture
def spawn(ferricorn_bin):
    """Function-scoped: `spawn.start(app, args=..., workers=...)`."""
    with ServerPool(ferricorn_bin) as pool:
        yield pool


@pytest.fixture(scope="session")
def close_log(tmp_path_factory):
    """The file the wsgiapp's iterables append their tag to when closed."""
    return str(tmp_path_factory.mktemp("close") / "close.log")


@pytest.fixture(scope="session")
def wsgi_server(ferricorn_bin, close_log):
    """The shared 1-worker server of tests/apps/wsgiapp.py."""
    with ServerPool(ferricorn_bin) as pool:
        yield pool.start("wsgiapp:application", args=["-e", "CLOSE_LOG=" + close_log])


@pytest.fixture(scope="session")
def wsgi_w2(ferricorn_bin):
    """A shared 2-worker server of tests/apps/wsgiapp.py."""
    with ServerPool(ferricorn_bin) as pool:
        yield pool.start("wsgiapp:application", args=["-w", "2"], workers=2)


# -- logs of the servers a failing test used ---------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._ferricorn_started = time.monotonic()
    item._ferricorn_marks = {id(s): s.mark() for s in ALL_SERVERS if s.stderr}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attaches the error log (and stdout) of every server the
    test talked to, from a little before the test started."""
    report = (yield).get_result()
    if not report.failed or call.when not in ("setup", "call"):
        return
    started = getattr(item, "_ferricorn_started", 0)
    marks = getattr(item, "_ferricorn_marks", {})
    for server in ALL_SERVERS:
        if server.stderr is None or server.last_used < started:
            continue
        start = max(0, marks.get(id(server), 0) - 20)
        title = "ferricorn %s (pid %s)" % (" ".join(server.cmd[1:]), server.proc.pid)
        report.sections.append(("error log of " + title, server.log(start) or "(empty)"))
        if server.stdout.lines:
            report.sections.append(("stdout of " + title, server.stdout.text()))
