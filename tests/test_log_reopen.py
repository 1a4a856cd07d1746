"""USR1: the master and every worker reopen their log files, so logrotate
can move them away (gunicorn's behaviour)."""
import os
import re
import signal
import subprocess
import time

from harness import APPS_DIR, START_TIMEOUT, child_env, get_status_body as get

POLL = 0.05


def wait_file_match(path, pattern, timeout=10):
    """Polls `path` until a line matches `pattern`; returns the match."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as handle:
                for line in handle:
                    match = regex.search(line)
                    if match:
                        return match
        time.sleep(POLL)
    text = open(path).read() if os.path.exists(path) else "(missing)"
    raise AssertionError("no line matching %r in %s:\n%s" % (pattern, path, text))



def test_usr1_reopens_error_and_access_logs(ferricorn_bin, tmp_path):
    """Both logs are files; after they are renamed, USR1 makes the master
    (`Handling signal: usr1`) and the workers (access lines) write to new
    files at the configured paths."""
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    proc = subprocess.Popen(
        [ferricorn_bin, "-b", "127.0.0.1:0", "-w", "2", "--chdir", str(APPS_DIR),
         "--error-logfile", str(error_log), "--access-logfile", str(access_log),
         "--access-logformat", "%(p)s %(r)s", "lifecycle:application"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=child_env(), cwd=APPS_DIR, start_new_session=True)
    try:
        port = int(wait_file_match(error_log, r"Listening at: http://127\.0\.0\.1:(\d+)",
                                   START_TIMEOUT).group(1))
        booted = []
        for _ in range(2):
            booted.append(wait_file_match(error_log, r"Booting worker", START_TIMEOUT))
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # until a worker answers
            try:
                assert get(port, "/before")[0] == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "server never answered"
                time.sleep(POLL)
        wait_file_match(access_log, r"GET /before ")
        os.rename(error_log, tmp_path / "error.log.1")
        os.rename(access_log, tmp_path / "access.log.1")
        os.kill(proc.pid, signal.SIGUSR1)
        wait_file_match(error_log, r"\[%d\] \[INFO\] Handling signal: usr1" % proc.pid)
        # Every worker got the signal and reopened: all later lines land
        # in the new file, whichever worker serves them.
        for n in range(20):
            assert get(port, "/after-%d" % n)[0] == 200
        for n in range(20):
            wait_file_match(access_log, r"GET /after-%d " % n)
        old = (tmp_path / "access.log.1").read_text()
        assert "/after-" not in old, old
        assert "/before" in old
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
