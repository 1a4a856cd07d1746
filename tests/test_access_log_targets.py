"""Access-log atoms, rejected requests, request-target forms and the
forwarded scheme, each compared with what gunicorn 27 does for the same
bytes (see the report in the commit messages for the gunicorn runs)."""
import base64
import json

import pytest

from harness import parse_response

APP = "logapp:application"
CLASSES = {
    "sync": [],
    "gthread": ["-k", "gthread", "--threads", "2"],
    "async": ["-k", "async"],
}


@pytest.fixture(scope="module", params=sorted(CLASSES))
def server(request, ferricorn_bin):
    """One server per worker class (their head paths differ), with the
    access log on stdout in a format that shows every atom under test."""
    from harness import ServerPool
    fmt = ('%(h)s "%(r)s" %(s)s b=%(b)s B=%(B)s m=%(m)s U=%(U)s q=%(q)s H=%(H)s '
           'rid=%({REQUEST_ID}e)s low=%({request_id}e)s home=%({HOME}e)s '
           'in=%({x-in}i)s out=%({x-out}o)s u=%(u)s a="%(a)s"')
    with ServerPool(ferricorn_bin) as pool:
        yield pool.start(APP, args=[*CLASSES[request.param], "--access-logfile", "-",
                                    "--access-logformat", fmt],
                         env={"HOME": "/home/of-the-process"})


def ask(server, raw):
    """Sends raw bytes; returns the parsed response."""
    reply = server.raw(raw)
    assert reply.data, "no response: %r" % reply
    return parse_response(reply.data)


def echo(server, request_line, headers=()):
    """(status, environ seen by the app or None) for one request line."""
    head = request_line + "\r\nHost: example.com\r\nConnection: close\r\n"
    head += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    resp = ask(server, head.encode())
    seen = json.loads(resp.body) if resp.status == 200 else None
    return resp.status, seen


def access_line(server, marker, start=0):
    """The access-log line (stdout) holding `marker`."""
    return server.stdout.wait_for(r".*%s.*" % marker, start=start)[0].group(0)


# -- wsgi.url_scheme from secure_scheme_headers ------------------------------

@pytest.mark.parametrize("headers, scheme", [
    ((), "http"),
    ((("X-Forwarded-Proto", "https"),), "https"),
    ((("X-Forwarded-Proto", "HTTPS"),), "http"),  # exact value match, as gunicorn
    ((("X-Forwarded-Proto", "http"),), "http"),
    ((("X-Forwarded-Ssl", "on"),), "https"),
    ((("X-Forwarded-Protocol", "ssl"),), "https"),
    ((("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on")), "https"),
    ((("X-Forwarded-Proto", "http"), ("X-Forwarded-Ssl", "off")), "http"),
    ((("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "https")), "https"),
])
def test_secure_scheme_headers_set_url_scheme(server, headers, scheme):
    status, seen = echo(server, "GET /s HTTP/1.1", headers)
    assert (status, seen["wsgi.url_scheme"]) == (200, scheme)


@pytest.mark.parametrize("headers", [
    (("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")),
    (("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http")),
])
def test_contradictory_scheme_headers_are_400(server, headers):
    mark = server.mark()
    status, _ = echo(server, "GET /contradiction HTTP/1.1", headers)
    assert status == 400
    server.stderr.wait_for(r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: "
                           r"Contradictory scheme headers", start=mark)


def test_scheme_headers_of_an_untrusted_peer_are_ignored(spawn):
    # 127.0.0.1 is not in the allow list: neither https nor a contradiction.
    server = spawn.start(APP, args=["--forwarded-allow-ips", "10.9.9.9"])
    contradictory = (("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off"))
    assert echo(server, "GET /u HTTP/1.1", contradictory)[1]["wsgi.url_scheme"] == "http"
    proto = (("X-Forwarded-Proto", "https"),)
    assert echo(server, "GET /u HTTP/1.1", proto)[1]["wsgi.url_scheme"] == "http"


# -- request targets ---------------------------------------------------------

# (request line, PATH_INFO, RAW_URI, QUERY_STRING): gunicorn 27's answers,
# except where noted.
TARGETS = [
    ("GET http://user:pw@example.com/p?q=1 HTTP/1.1", "/p", "http://user:pw@example.com/p?q=1", "q=1"),
    ("GET http://example.com HTTP/1.1", "", "http://example.com", ""),
    ("GET http://example.com?x=1 HTTP/1.1", "", "http://example.com?x=1", "x=1"),
    ("GET https://example.com:8443/a%20b/c?x=1#frag HTTP/1.1", "/a b/c",
     "https://example.com:8443/a%20b/c?x=1#frag", "x=1"),
    ("GET ftp://example.com/x HTTP/1.1", "/x", "ftp://example.com/x", ""),
    # gunicorn gives PATH_INFO "443" here (urlsplit reads the host as a
    # scheme); ferricorn gives the authority, as gunicorn does for [::1]:443.
    ("CONNECT example.com:443 HTTP/1.1", "example.com:443", "example.com:443", ""),
    ("CONNECT [::1]:443 HTTP/1.1", "[::1]:443", "[::1]:443", ""),
    ("OPTIONS * HTTP/1.1", "*", "*", ""),
    ("GET //double/slash?q HTTP/1.1", "//double/slash", "//double/slash?q", "q"),
    ("GET /p?a=1#frag?b HTTP/1.1", "/p", "/p?a=1#frag?b", "a=1"),
    ("GET /%2F%41%zz HTTP/1.1", "//A%zz", "/%2F%41%zz", ""),
]


@pytest.mark.parametrize("line, path_info, raw_uri, query", TARGETS)
def test_target_forms_fill_the_environ_as_gunicorn(server, line, path_info, raw_uri, query):
    status, seen = echo(server, line)
    assert status == 200
    assert (seen["PATH_INFO"], seen["RAW_URI"], seen["QUERY_STRING"]) == (path_info, raw_uri, query)
    # The Host header, not the target's authority, names the host (gunicorn).
    assert seen["HTTP_HOST"] == "example.com"


@pytest.mark.parametrize("line", [
    "GET example.com:443 HTTP/1.1",   # authority-form outside CONNECT (gunicorn: 400)
    "GET * HTTP/1.1",                 # gunicorn: 400
    "GET http://[::1/p HTTP/1.1",     # gunicorn: 400
    "CONNECT example.com HTTP/1.1",   # no port; gunicorn: 200
    "CONNECT /path HTTP/1.1",         # not authority-form; gunicorn: 200
    "GET http:///nohost HTTP/1.1",    # RFC 9110 4.2.1 MUST reject; gunicorn: 200
    "GET ://b/c HTTP/1.1",            # empty scheme; gunicorn: 200 with PATH_INFO "://b/c"
])
def test_invalid_targets_are_400(server, line):
    assert echo(server, line)[0] == 400


# -- access-log atoms --------------------------------------------------------

def test_environ_atoms_read_the_wsgi_environ(server):
    """%({REQUEST_ID}e)s is what the middleware put in the environ, matched
    ignoring case; a process environment variable is not an environ key."""
    mark = len(server.stdout.lines)
    assert echo(server, "GET /rid HTTP/1.1", [("X-Request-Id", "abc-123")])[0] == 200
    line = access_line(server, "GET /rid ", mark)
    assert " rid=abc-123 low=abc-123 home=- " in line, line


def test_empty_body_logs_zero_bytes(server):
    mark = len(server.stdout.lines)
    resp = ask(server, b"GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (resp.status, resp.body) == (200, b"")
    assert " 200 b=0 B=0 " in access_line(server, "GET /empty ", mark)


def test_head_logs_the_bytes_actually_sent(server):
    mark = len(server.stdout.lines)
    reply = server.raw(b"HEAD /head HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resp = parse_response(reply.data, head_request=True)
    assert resp.status == 200 and int(resp.header("Content-Length")) > 0
    assert reply.data.endswith(b"\r\n\r\n"), "a HEAD answer carries no body"
    assert " 200 b=0 B=0 " in access_line(server, "HEAD /head ", mark)


def test_quotes_and_control_characters_are_escaped(server):
    mark = len(server.stdout.lines)
    user = base64.b64encode(b'ev"il\nuser:pw').decode()
    status, _ = echo(server, 'GET /quote?x="1" HTTP/1.1', [
        ("User-Agent", 'agent "7"'), ("X-In", "tab\there"), ("Authorization", "Basic " + user)])
    assert status == 200
    line = access_line(server, "GET /quote", mark)
    assert '"GET /quote?x=\\"1\\" HTTP/1.1"' in line, line
    assert ' q=x=\\"1\\" ' in line, line
    assert ' in=tab\\x09here ' in line, line
    assert ' out=say \\"hi\\" ' in line, line
    # The user name would start a forged line if written raw (gunicorn does).
    assert ' u=ev\\"il\\x0auser ' in line, line
    assert line.endswith(' a="agent \\"7\\""'), line


def test_path_info_atom_is_decoded(server):
    mark = len(server.stdout.lines)
    assert echo(server, "GET /a%20b?k=v HTTP/1.1")[0] == 200
    line = access_line(server, "GET /a%20b", mark)
    assert " m=GET U=/a b q=k=v H=HTTP/1.1 " in line, line


# -- refused requests: warning + access line ---------------------------------

REFUSED = [
    (b"POST /clte HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     400, "both Content-Length and Transfer-Encoding", '"POST /clte HTTP/1.1" 400'),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     414, "request line longer than 4094 bytes", '"-" 414'),
    (b"GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
     431, "header field longer than 8190 bytes", '"GET /big HTTP/1.1" 431'),
    (b"GET x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid request target", '"GET x HTTP/1.1" 400'),
    (b"GET /scheme HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n",
     400, "Contradictory scheme headers", '"GET /scheme HTTP/1.1" 400'),
]


@pytest.mark.parametrize("raw, status, reason, logged", REFUSED,
                         ids=["cl-te", "414", "431", "bad-target", "scheme"])
def test_refused_request_is_warned_and_access_logged(server, raw, status, reason, logged):
    err_mark, out_mark = server.mark(), len(server.stdout.lines)
    resp = ask(server, raw)
    assert resp.status == status
    server.stderr.wait_for(r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: %s$" % reason,
                           start=err_mark)
    line = access_line(server, " %d b=" % status, out_mark)
    assert line.startswith('127.0.0.1 ' + logged + ' b=%d ' % len(resp.body)), line


def test_django_sees_the_forwarded_scheme(spawn):
    """Django's is_secure()/build_absolute_uri() follow wsgi.url_scheme, so a
    trusted proxy's X-Forwarded-Proto makes its absolute URLs https."""
    pytest.importorskip("django")
    server = spawn.start("djangoscheme:application")
    raw = (b"GET /s HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n"
           b"X-Forwarded-Proto: https\r\n\r\n")
    assert json.loads(ask(server, raw).body) == {"secure": True, "uri": "https://example.com/s"}
    raw = b"GET /s HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
    assert json.loads(ask(server, raw).body) == {"secure": False, "uri": "http://example.com/s"}
