"""Side by side with gunicorn: the requests of test_frameworks.py against
the four framework apps under gunicorn (-k sync, -k gthread) and ferricorn
(sync, gthread, async); prints, per framework, a table of every request
whose answers differ (status, key headers, body length/hash, whether the
connection closed, whether the log had the traceback).

Not a test (no test_ prefix): run it by hand,
    FERRICORN_BIN=target/venv-e2e/bin/ferricorn python3 tests/compare_gunicorn.py [--all] [flask ...]
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import REPO_DIR, Server, parse_response, read_until_closed  # noqa: E402
from test_frameworks import (APP_DATE, BIG_FILE_SIZE, FRAMEWORKS, KEEP_ALIVE,  # noqa: E402
                             STATIC_FILE_SIZE, UPLOAD_SIZE, boom_message, chunked,
                             request_bytes, slow_get)

SERVERS = {
    "gunicorn-sync": ("gunicorn", ["-k", "sync"]),
    "gunicorn-gthread": ("gunicorn", ["-k", "gthread", "--threads", "4"]),
    "ferricorn-sync": ("ferricorn", ["-k", "sync"]),
    "ferricorn-gthread": ("ferricorn", ["-k", "gthread", "--threads", "4"]),
    "ferricorn-async": ("ferricorn", ["-k", "async"]),
}
SHOWN_HEADERS = ("connection", "transfer-encoding", "x-name", "x-price")


def short_hash(data):
    return hashlib.sha256(data).hexdigest()[:8]


def summary(reply, server_name):
    """One answer as a short comparable string."""
    if not reply.data:
        return "no response (closed=%s)" % reply.closed
    try:
        resp = parse_response(reply.data)
    except AssertionError as error:
        return "unparsable (%d bytes): %s" % (len(reply.data), str(error)[:60])
    parts = [str(resp.status)]
    servers = resp.all("server")
    if servers != [server_name]:
        parts.append("server=%s" % servers)
    dates = resp.all("date")
    if len(dates) != 1 or dates[0] == APP_DATE:
        parts.append("date=%s" % ["app" if d == APP_DATE else "srv" for d in dates])
    for name in SHOWN_HEADERS:
        for value in resp.all(name):
            parts.append("%s=%r" % (name, value.encode("latin-1"))
                         if name.startswith("x-") else "%s=%s" % (name, value))
    body = resp.body
    if body[:1] == b"{" and len(body) < 300:
        parts.append(body.decode("utf-8", "replace").strip())
    else:
        parts.append("body=%d:%s" % (len(body), short_hash(body)))
    if not reply.closed:
        parts.append("OPEN")
    return " ".join(parts)


class Reply:
    def __init__(self, data, closed):
        self.data, self.closed = data, closed


def send(server, raw, timeout=5.0, bytewise=False):
    with server.connection(timeout) as sock:
        if bytewise:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(raw)):
                sock.sendall(raw[i:i + 1])
        else:
            sock.sendall(raw)
        return read_until_closed(sock, timeout)


def cases(files):
    """(name, function(server) -> summary string)."""
    upload = os.urandom(UPLOAD_SIZE)
    boundary = "fwmatrixboundary7d3a"
    multipart = b"".join([
        b"--%s\r\n" % boundary.encode(),
        b'Content-Disposition: form-data; name="file"; filename="up.bin"\r\n',
        b"Content-Type: application/octet-stream\r\n\r\n", upload, b"\r\n",
        b"--%s--\r\n" % boundary.encode()])
    body300k = os.urandom(300 * 1000)
    small = bytes(range(256)) * 3
    te = [("Transfer-Encoding", "chunked"), ("Content-Type", "application/octet-stream")]
    curl_body = os.path.join(files["dir"], "curl.bin")
    curl_data = os.urandom(1024 * 1024)
    with open(curl_body, "wb") as handle:
        handle.write(curl_data)
    curl_sha = hashlib.sha256(curl_data).hexdigest()

    def plain(path, method="GET", headers=(), body=b"", close=True, timeout=5.0):
        if body and not any(name == "Transfer-Encoding" for name, _ in headers):
            headers = [*headers, ("Content-Length", str(len(body)))]
        return lambda s: summary(send(s, request_bytes(method, path, headers, body, close),
                                      timeout), s.name)

    def bytewise(s):
        raw = request_bytes("POST", "/chunked-len", te, chunked(small, [1, 100, 255, 7]))
        return summary(send(s, raw, bytewise=True), s.name)

    def curl_chunked(s):
        run = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "-H", "Transfer-Encoding: chunked",
             "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + curl_body,
             "http://127.0.0.1:%d/chunked-len" % s.port], capture_output=True, timeout=30)
        return "rc=%d %s" % (run.returncode, run.stdout.decode("utf-8", "replace").strip())

    def slow(path, size, sha):
        def run(s):
            resp, length, data = slow_get(s, path)
            ok = len(data) == size and hashlib.sha256(data).hexdigest() == sha
            return "%d len=%d/%d %s" % (resp.status, len(data), length,
                                        "hash-ok" if ok else "HASH-DIFFERS")
        return run

    def raised(s):
        mark = s.mark()
        answer = summary(send(s, request_bytes("GET", "/raise"), timeout=3), s.name)
        deadline = time.monotonic() + 3
        while boom_message(s.framework) not in s.log(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        return answer + (" logged" if boom_message(s.framework) in s.log(mark) else " NOT-LOGGED")

    def euro(s):
        mark = s.mark()
        answer = plain("/hdr-euro")(s)
        time.sleep(0.2)  # let a log line about it arrive (report only)
        return answer + (" +error-log" if "rror" in s.log(mark) else "")

    def validator_log(s):
        text = s.log()
        return "AssertionError in log" if "AssertionError" in text else "clean"

    return [
        ("json", plain("/json", "POST", [("Content-Type", "application/json")],
                       json.dumps({"a": [1, 2], "t": "h\u00e9"}).encode())),
        ("upload-5mb", lambda s: plain(
            "/upload", "POST", [("Content-Type", "multipart/form-data; boundary=" + boundary)],
            multipart, timeout=30)(s).replace(hashlib.sha256(upload).hexdigest(), "<sha-ok>")),
        ("chunked-raw", lambda s: plain("/chunked-len", "POST", te,
                                        chunked(body300k, [1, 4095, 65536, 17, 100000]))(s)
         .replace(hashlib.sha256(body300k).hexdigest(), "<sha-ok>")),
        ("chunked-bytewise", lambda s: bytewise(s).replace(
            hashlib.sha256(small).hexdigest(), "<sha-ok>")),
        ("chunked-curl", lambda s: curl_chunked(s).replace(curl_sha, "<sha-ok>")),
        ("stream", plain("/stream")),
        ("file-20mb-slow", slow("/file", BIG_FILE_SIZE, files["big_sha"])),
        ("static-8mb-slow", slow("/static/big.bin", STATIC_FILE_SIZE, files["static_sha"])),
        ("raise", raised),
        ("hdr-latin1", plain("/hdr-latin1")),
        ("hdr-euro", euro),
        ("server-date", plain("/server-date")),
        ("close(keep-alive req)", plain("/close", close=False, timeout=3)),
        ("secure(XFP https)", plain("/secure", headers=[("X-Forwarded-Proto", "https")])),
        ("validator-log", validator_log),
    ]


def make_files(root):
    big, static = os.path.join(root, "big.bin"), os.path.join(root, "static")
    os.mkdir(static)
    out = {"dir": root}
    for path, size, key in ((big, BIG_FILE_SIZE, "big_sha"),
                            (os.path.join(static, "big.bin"), STATIC_FILE_SIZE, "static_sha")):
        data = os.urandom(size)
        with open(path, "wb") as handle:
            handle.write(data)
        out[key] = hashlib.sha256(data).hexdigest()
    out["env"] = {"FW_FILE": big, "FW_STATIC": static}
    return out


def main(argv):
    show_all = "--all" in argv
    frameworks = [a for a in argv if a in FRAMEWORKS] or list(FRAMEWORKS)
    ferricorn = os.path.abspath(os.environ.get("FERRICORN_BIN")
                                or os.path.join(REPO_DIR, "target/debug/ferricorn"))
    gunicorn = shutil.which("gunicorn")
    assert gunicorn, "gunicorn is not installed"
    version = subprocess.run([gunicorn, "--version"], capture_output=True, text=True)
    print("gunicorn: %s; ferricorn: %s" % (version.stdout.strip(), ferricorn))
    print("Legend: server=/date= shown only when not exactly one of the server's own;"
          " OPEN: the connection was still open when the read timed out (3-5 s);"
          " logged/NOT-LOGGED: the exception's message in the error log.")
    with tempfile.TemporaryDirectory() as root:
        files = make_files(root)
        todo = cases(files)
        for variant in ("app", "validated_app"):
            for framework in frameworks:
                answers = {}
                for label, (kind, args) in SERVERS.items():
                    binary = ferricorn if kind == "ferricorn" else gunicorn
                    server = Server(binary, "fw_%s:%s" % (framework, variant),
                                    args=["-w", "1", *args, "--keep-alive", KEEP_ALIVE],
                                    env=files["env"])
                    server.name, server.framework = kind, framework
                    try:
                        server.start()
                        for name, run in todo:
                            try:
                                answers[(name, label)] = run(server)
                            except Exception as error:  # report, keep comparing
                                answers[(name, label)] = "EXC %s: %s" % (
                                    type(error).__name__, str(error)[:80])
                    finally:
                        server.stop()
                print_table("%s (%s)" % (framework, variant), todo, answers, show_all)
    return 0


def print_table(title, todo, answers, show_all):
    print("\n== %s ==" % title)
    rows = 0
    for name, _ in todo:
        values = [answers.get((name, label), "-") for label in SERVERS]
        if not show_all and len(set(values)) == 1:
            continue
        rows += 1
        print("  %s" % name)
        for label, value in zip(SERVERS, values):
            print("    %-18s %s" % (label, value))
    if not rows:
        print("  (every answer the same)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
