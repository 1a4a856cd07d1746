"""gunicorn's flags for the WSGI path, accepted with gunicorn's meaning:
--reuse-port, the parser limits and --proxy-protocol modes, --no-sendfile
and SENDFILE, --capture-output, -R/--enable-stdio-inheritance,
--http-parser, the TLS flags; and the flags that cannot mean anything here
(--paste, --spew, --logger-class) refused saying why."""
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

from harness import (APPS_DIR, IO_TIMEOUT, START_TIMEOUT, Server, child_env, parse_response,
                     run_ferricorn)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_file_match(path, pattern, timeout=START_TIMEOUT):
    """Polls `path` until its text matches `pattern`; returns the match."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, errors="replace") as handle:
                found = regex.search(handle.read())
            if found:
                return found
        time.sleep(0.05)
    text = open(path, errors="replace").read() if os.path.exists(path) else "(missing)"
    raise AssertionError("no match for %r in %s:\n%s" % (pattern, path, text))


def get(port, path, timeout=IO_TIMEOUT):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_when_up(port, path, timeout=START_TIMEOUT):
    """GETs `path` once the server answers at all."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get(port, path)
        except OSError:
            assert time.monotonic() < deadline, "server on %d never answered" % port
            time.sleep(0.05)


# -- --reuse-port ------------------------------------------------------------

def test_reuse_port_lets_two_servers_share_a_port(spawn, ferricorn_bin):
    """Two servers with --reuse-port on one port both start and serve (the
    kernel spreads connections among them); a third without the flag
    cannot bind it."""
    port = free_port()
    bind = "127.0.0.1:%d" % port
    first = spawn.start("wsgiapp:application", args=["--reuse-port"], bind=bind)
    second = spawn.start("wsgiapp:application", args=["--reuse-port"], bind=bind)
    assert first.port == second.port == port
    pids = {int(get(port, "/pid")[1]) for _ in range(200)}
    assert pids == {first.booted_pids()[0], second.booted_pids()[0]}
    refused = run_ferricorn(ferricorn_bin, ["-b", bind, "wsgiapp:application"])
    assert refused.returncode != 0
    assert "Address already in use" in refused.stderr, refused.stderr


# -- parser limits ---------------------------------------------------------

def request_line_status(server, length):
    """The status of a GET whose request line is `length` bytes long."""
    target = "/" + "a" * (length - len("GET / HTTP/1.1"))
    line = "GET %s HTTP/1.1" % target
    assert len(line) == length
    reply = server.raw(("%s\r\nHost: x\r\nConnection: close\r\n\r\n" % line).encode())
    return parse_response(reply.data).status


def test_limit_request_line_above_the_maximum_is_lowered_to_8190(spawn):
    """--limit-request-line 8200 starts, as in gunicorn, and means 8190: a
    request line of 8190 bytes is served, one of 8191 or 8300 gets 414
    (what gunicorn 27 answers for the same requests)."""
    server = spawn.start("wsgiapp:application", args=["--limit-request-line", "8200"])
    assert request_line_status(server, 8190) == 404
    assert request_line_status(server, 8191) == 414
    assert request_line_status(server, 8300) == 414


def test_limit_request_field_size_zero_means_8190(spawn):
    """--limit-request-field_size 0 is gunicorn 27's default 8190 (its parser
    turns 0 into the default): an 8000-byte header is served, a 9000-byte
    one gets 431, as gunicorn answers."""
    server = spawn.start("wsgiapp:application", args=["--limit-request-field_size", "0"])

    def status(size):
        head = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\nConnection: close\r\n\r\n" % ("b" * size)
        return parse_response(server.raw(head.encode()).data).status

    assert status(8000) == 200
    assert status(9000) == 431


# -- --proxy-protocol ------------------------------------------------------

V1 = b"PROXY TCP4 198.51.100.7 203.0.113.9 4321 80\r\n"


def v2_header():
    """A PROXY v2 PROXY/TCP4 header for 198.51.100.8:4322 -> 203.0.113.9:80."""
    addresses = socket.inet_aton("198.51.100.8") + socket.inet_aton("203.0.113.9")
    addresses += struct.pack("!HH", 4322, 80)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) \
        + addresses


def remote_addr_via(server, header):
    """Sends `header` and a GET /environ; returns (status, REMOTE_ADDR or None)."""
    request = b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = parse_response(server.raw(header + request).data)
    if response.status != 200:
        return response.status, None
    import json
    return 200, json.loads(response.body)["REMOTE_ADDR"]


@pytest.mark.parametrize("mode, v1, v2", [
    ("v1", (200, "198.51.100.7"), 400),
    ("v2", 400, (200, "198.51.100.8")),
    ("auto", (200, "198.51.100.7"), (200, "198.51.100.8")),
    (None, (200, "198.51.100.7"), (200, "198.51.100.8")),  # the bare flag is auto
])
def test_proxy_protocol_modes(spawn, mode, v1, v2):
    """--proxy-protocol v1 takes a v1 header (REMOTE_ADDR is its source) and
    answers 400 to a v2 one, v2 the other way round, auto and the bare flag
    both; a plain request is still served. (The bare flag takes the next
    word as its value when that is not an option, as gunicorn's argparse
    does: `--proxy-protocol app:app` is an invalid mode in both.)"""
    args = ["--proxy-protocol"] + ([mode] if mode else ["-w", "1"])
    server = spawn.start("wsgiapp:application", args=args)
    for header, expected in ((V1, v1), (v2_header(), v2)):
        got = remote_addr_via(server, header)
        if isinstance(expected, int):
            assert got[0] == expected, (mode, header, got)
        else:
            assert got == expected, (mode, header, got)
    assert remote_addr_via(server, b"") == (200, "127.0.0.1")


# -- --no-sendfile / SENDFILE ------------------------------------------------

def sendfile_calls(server, path):
    """Fetches `path` through the app's wsgi.file_wrapper while strace
    watches the worker's threads; returns (body, number of sendfile calls)."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    pid = server.booted_pids()[0]
    tids = os.listdir("/proc/%d/task" % pid)
    out = path.parent / "strace.out"
    argv = ["strace", "-f", "-e", "trace=sendfile", "-o", str(out)]
    for tid in tids:
        argv += ["-p", tid]
    tracer = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        attached = 0
        deadline = time.monotonic() + IO_TIMEOUT
        while attached < len(tids):
            line = tracer.stderr.readline()
            if not line:
                pytest.skip("strace could not attach to the worker")
            if "attached" in line:
                attached += 1
            assert time.monotonic() < deadline, "strace did not attach in time"
        status, _, body = server.get("/filewrapper?path=%s" % path, timeout=20)
        assert status == 200
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=IO_TIMEOUT)
    return body, out.read_text().count("sendfile(")


@pytest.mark.parametrize("args, env, uses_sendfile", [
    ([], {}, True),
    (["--no-sendfile"], {}, False),
    ([], {"SENDFILE": "0"}, False),
    ([], {"SENDFILE": "1"}, True),
    (["--no-sendfile"], {"SENDFILE": "yes"}, False),
])
def test_no_sendfile_still_sends_the_whole_file(spawn, tmp_path, args, env, uses_sendfile):
    """A 3 MB file through wsgi.file_wrapper arrives whole either way; the
    worker calls sendfile() only without --no-sendfile and with SENDFILE
    unset or true (gunicorn's rule)."""
    path = tmp_path / "big.bin"
    data = os.urandom(3 * 1024 * 1024)
    path.write_bytes(data)
    server = spawn.start("wsgiapp:application", args=args, env=env)
    body, calls = sendfile_calls(server, path)
    assert body == data
    assert (calls > 0) == uses_sendfile, calls


# -- --capture-output, -R ----------------------------------------------------

def start_logging_to_file(args, log, stdout=subprocess.DEVNULL):
    """Starts stdioapp with the error log in `log`; returns (proc, port)."""
    proc = subprocess.Popen(
        [*args, "-b", "127.0.0.1:0", "--chdir", str(APPS_DIR), "--error-logfile", str(log),
         "stdioapp:app"],
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=stdout, env=child_env(),
        cwd=APPS_DIR, start_new_session=True)
    port = int(wait_file_match(log, r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
    wait_file_match(log, r"Booting worker")
    return proc, port


def stop(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=IO_TIMEOUT * 2)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_capture_output_sends_worker_stdio_to_the_error_log(ferricorn_bin, tmp_path):
    """--capture-output with --error-logfile FILE: the app's prints to
    stdout and stderr land in FILE next to the log lines; without it they
    go to the server's own stdout/stderr."""
    log, out = tmp_path / "error.log", tmp_path / "out.txt"
    with open(out, "w") as handle:
        proc, port = start_logging_to_file([ferricorn_bin, "--capture-output"], log, handle)
    try:
        assert get_when_up(port, "/?msg=captured") == (200, b"printed")
        wait_file_match(log, r"stdout says captured")
        wait_file_match(log, r"stderr says captured")
    finally:
        stop(proc)
    assert "captured" not in out.read_text()

    log2, out2 = tmp_path / "error2.log", tmp_path / "out2.txt"
    with open(out2, "w") as handle:
        proc, port = start_logging_to_file([ferricorn_bin], log2, handle)
    try:
        assert get_when_up(port, "/?msg=free") == (200, b"printed")
        wait_file_match(out2, r"stdout says free")
        wait_file_match(out2, r"stderr says free")
    finally:
        stop(proc)
    assert "says free" not in log2.read_text()


@pytest.mark.parametrize("inherit", [False, True])
def test_enable_stdio_inheritance_keeps_redirected_stdio_in_daemon_mode(
        ferricorn_bin, tmp_path, inherit):
    """-D: stdout/stderr go to /dev/null; with -R they stay where the shell
    pointed them (a file here) and the app's prints arrive there. stdin is
    /dev/null either way."""
    log, out, pidfile = tmp_path / "error.log", tmp_path / "out.txt", tmp_path / "d.pid"
    flags = ["-D", "-p", str(pidfile)] + (["-R"] if inherit else [])
    with open(out, "w") as handle:
        launcher, port = start_logging_to_file([ferricorn_bin, *flags], log, handle)
    assert launcher.wait(timeout=IO_TIMEOUT) == 0
    pid = int(wait_file_match(pidfile, r"(\d+)").group(1))
    try:
        assert os.readlink("/proc/%d/fd/0" % pid) == "/dev/null"
        expected = str(out) if inherit else "/dev/null"
        assert os.readlink("/proc/%d/fd/1" % pid) == expected
        assert os.readlink("/proc/%d/fd/2" % pid) == expected
        assert get_when_up(port, "/?msg=daemon") == (200, b"printed")
        if inherit:
            wait_file_match(out, r"stdout says daemon")
            wait_file_match(out, r"stderr says daemon")
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_file_match(log, r"Shutting down: Master")
    if not inherit:
        assert "daemon" not in out.read_text()


# -- --http-parser, TLS flags ------------------------------------------------

def test_http_parser_accepts_only_auto(ferricorn_bin):
    """--http-parser auto is the one parser; gunicorn's fast and python
    choices fail, saying why."""
    ok = run_ferricorn(ferricorn_bin, ["--http-parser", "auto", "--check-config", "hello:app"])
    assert ok.returncode == 0, ok.stderr
    for choice in ("fast", "python"):
        refused = run_ferricorn(ferricorn_bin, ["--http-parser", choice, "hello:app"])
        assert refused.returncode == 2
        assert "--http-parser" in refused.stderr and "one HTTP parser" in refused.stderr


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("cert")
    run = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem",
         "-out", "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=d, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return d / "cert.pem", d / "key.pem"


class TlsServer(Server):
    """A server probed for readiness over TLS."""

    def request(self, method, path, body=None, headers=None, timeout=IO_TIMEOUT):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=client_context())
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()


def client_context(version=None):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if version:
        context.minimum_version = context.maximum_version = version
    return context


def handshake(port, version):
    """The TLS version negotiated by a client limited to `version`, or None
    when the handshake fails."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw:
        try:
            with client_context(version).wrap_socket(raw) as tls:
                return tls.version()
        except ssl.SSLError:
            return None


@pytest.mark.parametrize("ssl_version, tls12, tls13", [
    (None, "TLSv1.2", "TLSv1.3"),
    ("TLS", "TLSv1.2", "TLSv1.3"),
    ("TLS_SERVER", "TLSv1.2", "TLSv1.3"),
    ("TLSv1_2", "TLSv1.2", None),
    ("TLSv1_3", None, "TLSv1.3"),
])
def test_ssl_version_limits_the_tls_versions(ferricorn_bin, cert, ssl_version, tls12, tls13):
    """--ssl-version maps gunicorn's names onto rustls' versions: a client
    limited to TLS 1.2 or 1.3 connects only where the setting allows it.
    The accepted no-op TLS flags start too."""
    certfile, keyfile = cert
    args = ["--certfile", str(certfile), "--keyfile", str(keyfile),
            "--do-handshake-on-connect", "--suppress-ragged-eofs"]
    if ssl_version:
        args += ["--ssl-version", ssl_version]
    server = TlsServer(ferricorn_bin, "hello:app", args=args)
    with server:
        assert handshake(server.port, ssl.TLSVersion.TLSv1_2) == tls12
        assert handshake(server.port, ssl.TLSVersion.TLSv1_3) == tls13


@pytest.mark.parametrize("ssl_version", ["TLSv1", "TLSv1_1", "SSLv3"])
def test_ssl_version_refuses_what_rustls_cannot_do(ferricorn_bin, cert, ssl_version):
    certfile, keyfile = cert
    refused = run_ferricorn(ferricorn_bin, ["--certfile", str(certfile), "--keyfile", str(keyfile),
                                            "--ssl-version", ssl_version, "hello:app"])
    assert refused.returncode == 2
    assert "--ssl-version" in refused.stderr and "rustls serves only TLS 1.2 and 1.3" in refused.stderr


# -- flags that cannot mean anything here -------------------------------------

@pytest.mark.parametrize("args, instead", [
    (["--paste", "development.ini"], "paste.deploy.loadapp"),
    (["--paster", "development.ini"], "paste.deploy.loadapp"),
    (["--spew"], "sys.settrace"),
    (["--logger-class", "myapp.Logger"], "--access-logformat"),
])
def test_meaningless_flags_fail_saying_why(ferricorn_bin, args, instead):
    """--paste, --spew, --logger-class: exit 2 before binding, with a message
    naming the flag, why it cannot work, and what to use instead."""
    refused = run_ferricorn(ferricorn_bin, [*args, "-b", "127.0.0.1:0", "hello:app"])
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: %s is not supported by ferricorn: " % args[0])
    assert instead in refused.stderr
    assert "Listening at" not in refused.stderr
