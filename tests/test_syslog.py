"""--log-syslog: the bytes gunicorn's SysLogHandler sends, to a UDP
listener in the test: `<PRI>gunicorn.<prefix>.<error|access>: [PID] MSG\\0`."""
import re
import socket
import time

import pytest


@pytest.fixture
def udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def receive(sock, want, timeout=5.0):
    """Datagrams until one matches each regex in `want` (bytes), or timeout."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(65536))
        except socket.timeout:
            break
        if all(any(re.fullmatch(w, g, re.S) for g in got) for w in want):
            break
    return got


def syslog_args(sock, *extra):
    return ["--log-syslog", "--log-syslog-to", "udp://127.0.0.1:%d" % sock.getsockname()[1],
            *extra]


def test_error_and_access_lines_reach_syslog(spawn, udp):
    server = spawn.start("wsgiapp:application",
                         args=syslog_args(udp, "--log-syslog-prefix", "svc",
                                          "--log-syslog-facility", "local0"))
    (pid,) = server.booted_pids()
    assert server.get("/raise?tag=s")[0] == 500
    master = server.proc.pid
    # local0 (16) * 8 + severity: info 6, error 3.
    want = [
        rb"<134>gunicorn\.svc\.error: \[%d\] Listening at: http://127\.0\.0\.1:\d+ \(%d\)\x00"
        % (master, master),
        rb"<134>gunicorn\.svc\.error: \[%d\] Booting worker with pid: %d\x00" % (pid, pid),
        # No --access-logfile: gunicorn still sends access lines to syslog.
        rb'<134>gunicorn\.svc\.access: \[%d\] 127\.0\.0\.1 - - \[[^]]+\] '
        rb'"GET /raise\?tag=s HTTP/1\.1" 500 \d+ "-" "[^"]*"\x00' % pid,
        # The traceback travels in the same datagram as its first line.
        rb"<131>gunicorn\.svc\.error: \[%d\] Error handling request /raise\?tag=s\n"
        rb"Traceback \(most recent call last\):\n.*ValueError: boom from the app s\x00" % pid,
    ]
    got = receive(udp, want)
    for pattern in want:
        assert any(re.fullmatch(pattern, g, re.S) for g in got), (pattern, got)
    # The error log itself is unchanged.
    server.stderr.wait_for(r"\[ERROR\] Error handling request /raise\?tag=s")


def test_access_lines_can_be_kept_out_of_syslog(spawn, udp):
    server = spawn.start("wsgiapp:application",
                         args=syslog_args(udp, "--disable-redirect-access-to-syslog",
                                          "--access-logfile", "-"))
    assert server.get("/?n=1")[0] == 200
    server.stdout.wait_for(r'"GET /\?n=1 HTTP/1\.1" 200')
    # The default prefix is the process name, `:` as `.`; facility user (1).
    got = receive(udp, [rb"<14>gunicorn\.wsgiapp\.application\.error: \[\d+\] Booting worker.*"])
    assert any(g.startswith(b"<14>gunicorn.wsgiapp.application.error: ") for g in got), got
    assert not [g for g in got if b".access:" in g], got


def test_bad_syslog_settings_are_refused(ferricorn_bin):
    from harness import run_ferricorn
    for args, named in [(["--log-syslog-to", "localhost:514"], "--log-syslog-to"),
                        (["--log-syslog-facility", "nope"], "--log-syslog-facility")]:
        done = run_ferricorn(ferricorn_bin, [*args, "wsgiapp:application"])
        assert done.returncode == 2, done
        assert named in done.stderr, done.stderr
