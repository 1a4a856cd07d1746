"""PEP 3333 environ, as seen by tests/apps/wsgiapp.py's /environ route
(str values as they are, anything else as repr())."""
import json
import uuid

from harness import parse_response, read_until_closed, server_fixture

mounted = server_fixture("wsgiapp:application", args=["-e", "SCRIPT_NAME=/mount"])
untrusting = server_fixture("wsgiapp:application", args=["--forwarded-allow-ips", "10.0.0.1"])


def environ_of(server, target="/environ", method="GET", headers=(("Host", "localhost"),),
               body=b"", protocol="HTTP/1.1"):
    """Sends exactly the given request line and headers on a raw socket and
    returns (environ dict, the client's local port)."""
    head = "%s %s %s\r\n" % (method, target, protocol)
    head += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    with server.connection() as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(head.encode("latin-1") + body)
        reply = read_until_closed(sock)
    response = parse_response(reply.data)
    assert response.status == 200, response
    return json.loads(response.body), client_port


def test_request_method(wsgi_server):
    """REQUEST_METHOD is the method as sent."""
    for method in ("GET", "POST", "PUT", "DELETE"):
        env, _ = environ_of(wsgi_server, method=method,
                            headers=(("Host", "x"), ("Content-Length", "0")))
        assert env["REQUEST_METHOD"] == method


def test_script_name_empty_by_default(wsgi_server):
    """Without SCRIPT_NAME in the environment, SCRIPT_NAME is '' and
    PATH_INFO is the whole path."""
    env, _ = environ_of(wsgi_server, "/environ/a/b")
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ/a/b"


def test_script_name_from_env_is_stripped_from_path_info(mounted):
    """-e SCRIPT_NAME=/mount: a request to /mount/environ/x gets
    SCRIPT_NAME=/mount and PATH_INFO=/environ/x."""
    env, _ = environ_of(mounted, "/mount/environ/x")
    assert env["SCRIPT_NAME"] == "/mount"
    assert env["PATH_INFO"] == "/environ/x"


def test_path_info_percent_decoded_as_latin1(wsgi_server):
    """/caf%C3%A9 decodes to the bytes c3 a9, each one a code point."""
    env, _ = environ_of(wsgi_server, "/environ/caf%C3%A9%20x")
    assert env["PATH_INFO"] == "/environ/caf\u00c3\u00a9 x"


def test_query_string_raw(wsgi_server):
    """QUERY_STRING is the query as sent, not decoded."""
    env, _ = environ_of(wsgi_server, "/environ?a=1&b=%20x&c")
    assert env["QUERY_STRING"] == "a=1&b=%20x&c"


def test_query_string_empty_when_absent(wsgi_server):
    """QUERY_STRING is present and '' when the target has no query."""
    env, _ = environ_of(wsgi_server, "/environ")
    assert env["QUERY_STRING"] == ""


def test_content_type_and_length(wsgi_server):
    """Content-Type/Content-Length become CONTENT_TYPE/CONTENT_LENGTH, not
    HTTP_CONTENT_*."""
    env, _ = environ_of(wsgi_server, method="POST", body=b"hello", headers=(
        ("Host", "x"), ("Content-Type", "application/x-test"), ("Content-Length", "5")))
    assert env["CONTENT_TYPE"] == "application/x-test"
    assert env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_server_name_and_port_from_host(wsgi_server):
    """SERVER_NAME/SERVER_PORT come from Host; a Host without a port
    means 80 for http."""
    env, _ = environ_of(wsgi_server, headers=(("Host", "example.com:8081"),))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8081")
    env, _ = environ_of(wsgi_server, headers=(("Host", "example.org"),))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.org", "80")


def test_server_protocol_as_sent(wsgi_server):
    """SERVER_PROTOCOL is HTTP/1.0 or HTTP/1.1 exactly as the client sent it."""
    env, _ = environ_of(wsgi_server, protocol="HTTP/1.0")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    env, _ = environ_of(wsgi_server, protocol="HTTP/1.1")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_http_keys_only_for_sent_headers(wsgi_server):
    """The HTTP_* keys are exactly those of the headers sent."""
    env, _ = environ_of(wsgi_server, headers=(
        ("Host", "x"), ("X-Custom-Header", "v1"), ("Accept", "*/*")))
    http_keys = {k: v for k, v in env.items() if k.startswith("HTTP_")}
    assert http_keys == {"HTTP_HOST": "x", "HTTP_X_CUSTOM_HEADER": "v1", "HTTP_ACCEPT": "*/*"}


def test_repeated_header_joined_with_comma(wsgi_server):
    """A header sent twice arrives as one HTTP_* value joined with ','."""
    env, _ = environ_of(wsgi_server, headers=(("Host", "x"), ("X-Rep", "a"), ("X-Rep", "b")))
    assert env["HTTP_X_REP"] == "a,b"


def test_remote_addr_and_port(wsgi_server):
    """REMOTE_ADDR/REMOTE_PORT are the client socket's address."""
    env, client_port = environ_of(wsgi_server)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(client_port)


def test_raw_uri(wsgi_server):
    """RAW_URI is the request target exactly as sent, query included."""
    env, _ = environ_of(wsgi_server, "/environ/a%20b//c?x=1&y=%2F")
    assert env["RAW_URI"] == "/environ/a%20b//c?x=1&y=%2F"


def test_wsgi_version(wsgi_server):
    """wsgi.version is the tuple (1, 0)."""
    env, _ = environ_of(wsgi_server)
    assert env["wsgi.version"] == "(1, 0)"


def test_url_scheme_http_by_default(wsgi_server):
    """wsgi.url_scheme is http without forwarding headers."""
    env, _ = environ_of(wsgi_server)
    assert env["wsgi.url_scheme"] == "http"


def test_url_scheme_https_from_trusted_forwarded_proto(wsgi_server):
    """X-Forwarded-Proto: https from 127.0.0.1 (trusted by default) makes
    wsgi.url_scheme https."""
    env, _ = environ_of(wsgi_server, headers=(("Host", "x"), ("X-Forwarded-Proto", "https")))
    assert env["wsgi.url_scheme"] == "https"


def test_url_scheme_ignores_untrusted_forwarded_proto(untrusting):
    """With --forwarded-allow-ips 10.0.0.1, X-Forwarded-Proto from 127.0.0.1
    is ignored: wsgi.url_scheme stays http."""
    env, _ = environ_of(untrusting, headers=(("Host", "x"), ("X-Forwarded-Proto", "https")))
    assert env["wsgi.url_scheme"] == "http"


def test_wsgi_flags_single_worker(wsgi_server):
    """1 sync worker: multithread False, multiprocess False, run_once False."""
    env, _ = environ_of(wsgi_server)
    assert env["wsgi.multithread"] == "False"
    assert env["wsgi.multiprocess"] == "False"
    assert env["wsgi.run_once"] == "False"


def test_wsgi_multiprocess_with_two_workers(wsgi_w2):
    """-w 2: wsgi.multiprocess is True (multithread still False)."""
    env, _ = environ_of(wsgi_w2)
    assert env["wsgi.multiprocess"] == "True"
    assert env["wsgi.multithread"] == "False"


def test_wsgi_errors_goes_to_error_log(wsgi_server):
    """Text written to wsgi.errors shows up in the error log."""
    marker = uuid.uuid4().hex
    start = wsgi_server.mark()
    status, _, _ = wsgi_server.get("/errors?msg=" + marker)
    assert status == 200
    wsgi_server.stderr.wait_for("wsgi.errors says " + marker, start=start)


def test_underscore_header_dropped(wsgi_server):
    """`X_Evil: 1` does not become HTTP_X_EVIL (it could pose as X-Evil);
    `X-Evil` does, and keeps its own value when both are sent."""
    env, _ = environ_of(wsgi_server, headers=(("Host", "x"), ("X_Evil", "1")))
    assert "HTTP_X_EVIL" not in env
    env, _ = environ_of(wsgi_server, headers=(("Host", "x"), ("X-Evil", "dash")))
    assert env["HTTP_X_EVIL"] == "dash"
    env, _ = environ_of(wsgi_server, headers=(
        ("Host", "x"), ("X-Evil", "dash"), ("X_Evil", "underscore")))
    assert env["HTTP_X_EVIL"] == "dash"
