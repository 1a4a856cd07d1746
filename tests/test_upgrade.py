"""Binary upgrade (USR2, then WINCH/TERM to the old master), socket
activation (LISTEN_FDS/LISTEN_PID) and sd_notify, against real processes."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

from harness import APPS_DIR, BOOTING_RE, START_TIMEOUT, child_env, get_status_body as get
from load import Load
from test_lifecycle import ACCESS, RELOAD_TIMEOUT, assert_clean, served, url

POLL = 0.05


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(POLL)


def read_pid(path):
    try:
        return int(open(path).read().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_usr2_upgrade_then_term_old_master_under_load(spawn, tmp_path):
    """Under load: USR2 starts a new master that writes `<pidfile>.2` and
    boots its own workers on the inherited socket; WINCH stops the old
    workers; TERM stops the old master, and the new one takes over the
    pidfile. The load sees no failure and no non-2xx."""
    pidfile = tmp_path / "app.pid"
    server = spawn.start("lifecycle:application", workers=2,
                         args=["-w", "2", "--pid", str(pidfile), *ACCESS])
    old_master = server.proc.pid
    old_workers = set(server.booted_pids())
    with Load(url(server)) as load:
        served(server, 200)
        mark = server.mark()
        server.signal(signal.SIGUSR2)
        started = server.stderr.wait_for(r"Upgrading: started a new master \(pid:(\d+)\)",
                                         start=mark)[0]
        new_master = int(started.group(1))
        wait_until(lambda: read_pid(str(pidfile) + ".2") == new_master, START_TIMEOUT,
                   "the new master's pidfile.2")
        assert read_pid(pidfile) == old_master
        server.stderr.wait_for(r"\[%d\] \[INFO\] Listening at: http://127\.0\.0\.1:%d \(%d\)"
                               % (new_master, server.port, new_master), start=mark)
        booted = server.stderr.wait_for(BOOTING_RE.pattern, start=mark, count=2,
                                        timeout=RELOAD_TIMEOUT)
        new_workers = {int(m.group(1)) for m in booted}
        served(server, 50, pids=new_workers)
        mark = server.mark()
        server.signal(signal.SIGWINCH)
        for pid in old_workers:
            server.stderr.wait_for(r"Worker exiting \(pid: %d\)" % pid, start=mark,
                                   timeout=RELOAD_TIMEOUT)
        served(server, 50, pids=new_workers)
        assert server.proc.poll() is None, "the old master must wait for TERM"
        server.signal(signal.SIGTERM)
        assert server.proc.wait(timeout=RELOAD_TIMEOUT) == 0
        wait_until(lambda: read_pid(pidfile) == new_master, START_TIMEOUT,
                   "the new master to take over the pidfile")
        assert not os.path.exists(str(pidfile) + ".2")
        served(server, 50, pids=new_workers)
        assert load.running()
        result = load.finish()
    assert_clean(result)
    print("USR2 + WINCH + TERM old master under load:", result)
    os.kill(new_master, signal.SIGTERM)
    wait_until(lambda: not alive(new_master), RELOAD_TIMEOUT, "the new master to exit")
    assert not pidfile.exists()


class Activated:
    """ferricorn started the way systemd starts it: a listening socket on
    fd 3, LISTEN_FDS=1, LISTEN_PID=its pid, NOTIFY_SOCKET set."""

    def __init__(self, binary, tmp_path, args=()):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.notify_path = str(tmp_path / "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.log_path = tmp_path / "error.log"
        fd = self.listener.fileno()
        # The wrapper moves the socket to fd 3 and names its own pid, which
        # exec keeps, in LISTEN_PID: exactly what systemd does.
        wrapper = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
                   "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
                   "os.execv(sys.argv[2], sys.argv[2:])")
        env = child_env({"NOTIFY_SOCKET": self.notify_path})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", wrapper, str(fd), binary, "--chdir", str(APPS_DIR),
             "--error-logfile", str(self.log_path), *args, "lifecycle:application"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, cwd=APPS_DIR, start_new_session=True, pass_fds=(fd,))

    def message(self, timeout=START_TIMEOUT):
        self.notify.settimeout(timeout)
        return self.notify.recv(4096).decode()

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.listener.close()
        self.notify.close()



def test_socket_activation_and_sd_notify(ferricorn_bin, tmp_path):
    """With LISTEN_FDS, the inherited socket is served (nothing is bound);
    NOTIFY_SOCKET gets READY=1 once the workers are ready, RELOADING=1 and
    READY=1 around a HUP, STOPPING=1 on TERM."""
    server = Activated(ferricorn_bin, tmp_path, args=["-w", "2"])
    try:
        assert server.message() == "READY=1", server.log()
        status, body = get(server.port)
        assert status == 200 and body.startswith(b"ok "), body
        assert re.search(r"Listening at: http://127\.0\.0\.1:%d " % server.port, server.log())
        server.proc.send_signal(signal.SIGHUP)
        assert server.message() == "RELOADING=1"
        assert server.message(RELOAD_TIMEOUT) == "READY=1", server.log()
        server.proc.send_signal(signal.SIGTERM)
        assert server.message() == "STOPPING=1"
        assert server.proc.wait(timeout=10) == 0
    finally:
        server.close()
