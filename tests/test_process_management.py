"""Process management: titles in ps, --daemon, --user/--group/--initgroups,
--umask, --worker-tmp-dir."""
import os
import re
import signal
import subprocess
import time

import pytest

from harness import APPS_DIR, IO_TIMEOUT, run_ferricorn


def ps_args(pid):
    return subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True,
                          text=True, check=True).stdout.strip()


def proc_status(pid):
    with open("/proc/%d/status" % pid) as status:
        return dict(line.split(":", 1) for line in status.read().splitlines() if ":" in line)


def test_process_titles(spawn):
    """ps -o args shows `ferricorn: master [app]` and `ferricorn: worker [app]`."""
    server = spawn.start("hello:app", args=["-w", "2"], workers=2)
    assert ps_args(server.proc.pid) == "ferricorn: master [hello:app]"
    for pid in server.booted_pids():
        assert ps_args(pid) == "ferricorn: worker [hello:app]"


def test_process_titles_with_name(spawn):
    """-n NAME replaces the app in the titles."""
    server = spawn.start("hello:app", args=["-n", "shop"])
    assert ps_args(server.proc.pid) == "ferricorn: master [shop]"
    assert ps_args(server.booted_pids()[0]) == "ferricorn: worker [shop]"


def wait_for_file(path, pattern, timeout=IO_TIMEOUT * 2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as handle:
                found = re.search(pattern, handle.read())
            if found:
                return found
        time.sleep(0.05)
    raise AssertionError("%r never appeared in %s" % (pattern, path))


def test_daemon(ferricorn_bin, tmp_path):
    """-D: the command returns 0 at once; the daemon (pid from --pid) is in
    its own session but not its leader, logs to --error-logfile, serves,
    keeps the working directory, and stops on TERM."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.log"
    result = run_ferricorn(ferricorn_bin, ["-D", "-p", str(pidfile), "--error-logfile", str(log),
                                           "-b", "127.0.0.1:0", "hello:app"])
    assert result.returncode == 0, result
    listening = wait_for_file(str(log), r"Listening at: http://127\.0\.0\.1:(\d+) \((\d+)\)")
    pid = int(listening.group(2))
    try:
        wait_for_file(str(log), r"Booting worker")
        assert int(pidfile.read_text().strip()) == pid
        assert os.getsid(pid) != pid
        assert os.getsid(pid) != os.getsid(0)
        assert os.readlink("/proc/%d/cwd" % pid) == str(APPS_DIR)
        assert os.readlink("/proc/%d/fd/0" % pid) == "/dev/null"
        assert os.readlink("/proc/%d/fd/2" % pid) == "/dev/null"
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", int(listening.group(1)), timeout=IO_TIMEOUT)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for_file(str(log), r"Shutting down: Master")
    deadline = time.monotonic() + IO_TIMEOUT
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pidfile.exists()


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")


@root_only
def test_user_group_umask(spawn):
    """-u nobody -g nogroup -m 027: workers run as 65534/65534 with only
    that group; the master stays root; both have umask 027. (--preload:
    the interpreter under /root is not readable by nobody.)"""
    server = spawn.start("hello:app", args=["-u", "nobody", "-g", "nogroup", "-m", "027",
                                            "--preload", "--worker-tmp-dir", "/dev/shm"])
    assert server.get("/")[0] == 200
    master, worker = proc_status(server.proc.pid), proc_status(server.booted_pids()[0])
    assert master["Uid"].split()[0] == "0"
    assert worker["Uid"].split() == ["65534"] * 4
    assert worker["Gid"].split() == ["65534"] * 4
    assert worker["Groups"].split() == ["65534"]
    assert master["Umask"].strip() == worker["Umask"].strip() == "0027"


@root_only
def test_numeric_user_with_initgroups(spawn):
    """-u 65534 --initgroups (group: the user's primary group)."""
    server = spawn.start("hello:app", args=["-u", "65534", "--initgroups", "--preload"])
    assert server.get("/")[0] == 200
    worker = proc_status(server.booted_pids()[0])
    assert worker["Uid"].split()[0] == "65534"
    assert worker["Gid"].split()[0] == "65534"
    assert "0" not in worker["Groups"].split()


def test_unknown_user_is_refused(ferricorn_bin):
    """An unknown user name stops startup before binding."""
    result = run_ferricorn(ferricorn_bin, ["-u", "no-such-user-x", "-b", "127.0.0.1:0",
                                           "hello:app"])
    assert result.returncode == 1, result
    assert "no such user: no-such-user-x" in result.stderr
