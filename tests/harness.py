"""Running ferricorn as a subprocess and talking HTTP to it.

Every wait here is bounded: log waits, socket reads, process exits.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
APPS_DIR = TESTS_DIR / "apps"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 5.0

LISTENING_RE = re.compile(r"Listening at: (\S+) \((\d+)\)")
BOOTING_RE = re.compile(r"Booting worker with pid: (\d+)")

# Every server started, so a failing test can show the logs of those it used.
ALL_SERVERS = []


class LogCollector:
    """Collects the lines of a pipe in a background thread."""

    def __init__(self, pipe):
        self.lines = []
        self._cond = threading.Condition()
        self.closed = False
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe):
        for raw in iter(pipe.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def text(self, start=0):
        with self._cond:
            return "\n".join(self.lines[start:])

    def wait_for(self, pattern, timeout=IO_TIMEOUT, start=0, count=1):
        """Waits until `count` lines from index `start` on match `pattern`
        (a regex); returns the matches. Raises AssertionError on timeout."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in map(regex.search, self.lines[start:]) if m]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed:
                    raise AssertionError(
                        "%s while waiting %.1fs for %d line(s) matching %r; log:\n%s"
                        % ("the stream closed" if self.closed else "timed out", timeout,
                           count, pattern, "\n".join(self.lines[start:])))
                self._cond.wait(remaining)

    def join(self, timeout=IO_TIMEOUT):
        self._thread.join(timeout)


def run_ferricorn(binary, args, env=None, timeout=30):
    """Runs a ferricorn command to completion (check/print-config, bad flags,
    apps that fail to load) and returns the CompletedProcess."""
    return subprocess.run([binary, *args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(env), cwd=APPS_DIR)


def child_env(extra=None):
    """The environment for ferricorn: ours minus any FERRICORN_* setting,
    plus `extra`. (Children also run in tests/apps, which has no
    ferricorn.toml, so no config file is picked up by accident.)"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRICORN_")}
    env.update(extra or {})
    return env


class Server:
    """One ferricorn master process.

    `workers` is the number of `Booting worker` lines to wait for; pass
    args such as `-w 2` separately (so config files and env vars can set it).
    """

    def __init__(self, binary, app, args=(), workers=1, env=None,
                 bind="127.0.0.1:0", ready_path="/"):
        self.binary = binary
        self.app = app
        self.args = list(args)
        self.workers = workers
        self.env = env
        self.bind = bind
        self.ready_path = ready_path
        self.proc = None
        self.port = None
        self.unix_path = bind[len("unix:"):] if bind.startswith("unix:") else None
        self.stdout = self.stderr = None
        self.last_used = 0.0  # time.monotonic() of the last start/connection/signal

    # -- lifecycle -------------------------------------------------------

    def start(self, timeout=START_TIMEOUT):
        cmd = [self.binary, "-b", self.bind, "--chdir", str(APPS_DIR), *self.args]
        if self.app:
            cmd.append(self.app)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=child_env(self.env),
                                     cwd=APPS_DIR, start_new_session=True)
        ALL_SERVERS.append(self)
        self.last_used = time.monotonic()
        self.stderr = LogCollector(self.proc.stderr)
        self.stdout = LogCollector(self.proc.stdout)
        deadline = time.monotonic() + timeout
        listening = self.stderr.wait_for(LISTENING_RE.pattern, timeout)[0]
        assert int(listening.group(2)) == self.proc.pid, listening.group(0)
        if self.unix_path is None:
            self.port = int(re.search(r":(\d+)$", listening.group(1)).group(1))
        self.stderr.wait_for(BOOTING_RE.pattern, deadline - time.monotonic(),
                             count=self.workers)
        self.wait_until_serving(deadline - time.monotonic())
        return self

    def wait_until_serving(self, timeout=START_TIMEOUT):
        """Polls with real requests until one gets an HTTP response."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "server exited with %s:\n%s" % (
                self.proc.returncode, self.log())
            try:
                status, _, _ = self.request("GET", self.ready_path, timeout=2)
                return status
            except (OSError, http.client.HTTPException) as error:
                last_error = error
                time.sleep(0.05)
        raise AssertionError("server never answered %s: %r\n%s" % (
            self.ready_path, last_error, self.log()))

    def wait_until_workers_ready(self, control_socket, timeout=START_TIMEOUT):
        """Polls the control socket (the server must run with
        `--control-socket control_socket`) until all of its workers report
        ready: an answered request proves only that one worker serves,
        while a sibling may still be importing the app."""
        deadline = time.monotonic() + timeout
        states = None
        while time.monotonic() < deadline:
            done = subprocess.run([self.binary, "ctl", "-s", control_socket,
                                   "-c", "show workers", "-j"],
                                  capture_output=True, text=True, timeout=timeout)
            if done.returncode == 0:
                states = [w["state"] for w in json.loads(done.stdout)["workers"]]
                if states.count("ready") == self.workers == len(states):
                    return
            time.sleep(0.05)
        raise AssertionError("the workers never all became ready: %r\n%s" % (
            states, self.log()))

    def signal(self, signum):
        self.last_used = time.monotonic()
        self.proc.send_signal(signum)

    def wait(self, timeout=STOP_TIMEOUT):
        """Waits for the master to exit; returns its exit code."""
        code = self.proc.wait(timeout=timeout)
        self.stderr.join()
        self.stdout.join()
        return code

    def stop(self):
        """TERM, wait, and as a last resort KILL the server's process group
        (master and workers; it runs in its own session). Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill_group()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self.kill_group()  # workers left behind by a master that died
        return self.wait()

    def kill_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- introspection ---------------------------------------------------

    def log(self, start=0):
        return self.stderr.text(start) if self.stderr else ""

    def booted_pids(self):
        return [int(m.group(1)) for m in map(BOOTING_RE.search, self.stderr.lines) if m]

    def mark(self):
        """The current length of the error log, to wait for later lines."""
        return len(self.stderr.lines)

    # -- talking to it ---------------------------------------------------

    def connection(self, timeout=IO_TIMEOUT):
        self.last_used = time.monotonic()
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(self.unix_path)
            return sock
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=IO_TIMEOUT):
        """One request through http.client: (status, HTTPMessage, body)."""
        self.last_used = time.monotonic()
        if self.unix_path is not None:
            head = "%s %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % (method, path)
            reply = self.raw(head.encode(), timeout=timeout)
            if not reply.data:
                raise ConnectionError("closed without a response: %r" % reply)
            resp = parse_response(reply.data)
            return resp.status, resp.headers, resp.body
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def raw(self, data, timeout=IO_TIMEOUT):
        """Sends raw bytes on a fresh connection and reads until the server
        closes it. Returns a RawReply."""
        with self.connection(timeout) as sock:
            sock.sendall(data)
            return read_until_closed(sock, timeout)


class RawReply:
    """What a raw connection received: `data`, and how it ended: `closed`
    (EOF or reset) or not (timed out with the connection still open)."""

    def __init__(self, data, closed, reset):
        self.data, self.closed, self.reset = data, closed, reset

    def __repr__(self):
        return "RawReply(closed=%s, reset=%s, data=%r)" % (self.closed, self.reset, self.data[:600])


def read_until_closed(sock, timeout=IO_TIMEOUT):
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return RawReply(b"".join(chunks), closed=False, reset=False)
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return RawReply(b"".join(chunks), closed=False, reset=False)
        except ConnectionResetError:
            return RawReply(b"".join(chunks), closed=True, reset=True)
        if not chunk:
            return RawReply(b"".join(chunks), closed=True, reset=False)
        chunks.append(chunk)


def read_head(sock, timeout=IO_TIMEOUT):
    """Reads up to and including the first blank line; returns (head, extra)."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "no complete response head within %ss: %r" % (timeout, data)
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a complete head: %r" % data
        data += chunk
    head, _, extra = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", extra


class Response:
    """A parsed HTTP/1.x response from raw bytes."""

    def __init__(self, status_line, status, headers, body=b"", rest=b""):
        self.status_line = status_line
        self.status = status
        self.headers = headers  # list of (lower-case name, value)
        self.body = body
        self.rest = rest  # bytes after this response

    def header(self, name):
        values = self.all(name)
        assert len(values) <= 1, "several %s headers: %r" % (name, values)
        return values[0] if values else None

    def all(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def __repr__(self):
        return "Response(%r, %r, body=%r, rest=%r)" % (
            self.status_line, self.headers, self.body[:300], self.rest[:300])


def parse_head(head):
    lines = head.split(b"\r\n")
    status_line = lines[0].decode("latin-1")
    match = re.match(r"HTTP/1\.[01] (\d{3})(?: |$)", status_line)
    assert match, "bad status line %r" % status_line
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.decode("latin-1").partition(":")
        assert sep, "bad header line %r" % line
        headers.append((name.lower(), value.strip()))
    return status_line, int(match.group(1)), headers


def parse_response(data, head_request=False):
    """Parses the first response in `data`, framed the way the server says."""
    assert b"\r\n\r\n" in data, "no complete response in %r" % data[:600]
    head, _, after = data.partition(b"\r\n\r\n")
    status_line, status, headers = parse_head(head)
    framing = Response(status_line, status, headers)
    te = framing.header("transfer-encoding")
    length = framing.header("content-length")
    if head_request or status in (204, 304) or 100 <= status < 200:
        body, rest = b"", after
    elif te is not None:
        assert te.lower() == "chunked", "unexpected Transfer-Encoding %r" % te
        body, rest = decode_chunked(after)
    elif length is not None:
        n = int(length)
        assert len(after) >= n, "body shorter (%d) than Content-Length %d" % (len(after), n)
        body, rest = after[:n], after[n:]
    else:
        body, rest = after, b""  # delimited by the connection close
    return Response(status_line, status, headers, body, rest)


def decode_chunked(data):
    """Decodes a chunked body; returns (body, bytes after it)."""
    body = b""
    while True:
        line, sep, data = data.partition(b"\r\n")
        assert sep, "truncated chunk size line: %r" % line
        size = int(line.split(b";")[0], 16)
        if size == 0:
            if data.startswith(b"\r\n"):  # no trailer fields
                return body, data[2:]
            trailers, sep, rest = data.partition(b"\r\n\r\n")
            assert sep, "missing end of chunked body: %r" % data
            return body, rest
        assert len(data) >= size + 2, "truncated chunk: %r" % data[:100]
        body += data[:size]
        assert data[size:size + 2] == b"\r\n", "chunk not followed by CRLF"
        data = data[size + 2:]


def get_status_body(port, path="/", timeout=IO_TIMEOUT):
    """One GET on a fresh connection to 127.0.0.1:port: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_for_file_line(path, line, timeout=IO_TIMEOUT):
    """Polls a file until it holds `line` (used for close() records)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as handle:
                if line in handle.read().splitlines():
                    return True
        time.sleep(0.02)
    return False


class ServerPool:
    """Starts servers and stops every one of them at teardown."""

    def __init__(self, binary):
        self.binary = binary
        self.servers = []

    def start(self, app, *args, **kwargs):
        server = Server(self.binary, app, *args, **kwargs)
        self.servers.append(server)
        server.start()
        return server

    def prepare(self, app, *args, **kwargs):
        """A server not yet started (for tests that start it themselves)."""
        server = Server(self.binary, app, *args, **kwargs)
        self.servers.append(server)
        return server

    def stop_all(self):
        for server in self.servers:
            server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()


def server_fixture(app, scope="module", **kwargs):
    """A fixture serving `app` (Server keyword arguments), shared by `scope`."""
    @pytest.fixture(scope=scope)
    def fixture(ferricorn_bin):
        with ServerPool(ferricorn_bin) as pool:
            yield pool.start(app, **kwargs)
    return fixture


def h2_get(port, path, method="GET"):
    """One HTTP/2 request with the `h2` library (curl does not show
    trailers): returns (headers, body, trailers)."""
    import h2.config
    import h2.connection
    import h2.events
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    headers, body, trailers = None, b"", None
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as sock:
        conn.initiate_connection()
        conn.send_headers(1, [(":method", method), (":path", path), (":scheme", "http"),
                              (":authority", "x"), ("te", "trailers")], end_stream=True)
        sock.sendall(conn.data_to_send())
        ended = False
        while not ended:
            data = sock.recv(65536)
            assert data, "connection closed before the stream ended"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = event.headers
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
    return headers, body, trailers
