"""`--log-format json`: every error-log and access-log line is one JSON
object with ECS field names; a traceback is one record."""
import json
import re

from harness import run_ferricorn

ECS_FIRST = ["@timestamp", "log.level", "message"]
TIMESTAMP_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def records(collector, start=0):
    """Every line from `start` on, parsed (fails on a line that is not JSON)."""
    lines = [line for line in collector.lines[start:] if line]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError as error:
            raise AssertionError("not a JSON line: %r (%s)" % (line, error))
    return parsed


def check_common(record, logger):
    assert list(record)[:3] == ECS_FIRST, list(record)
    assert re.fullmatch(TIMESTAMP_RE, record["@timestamp"]), record
    assert record["log.logger"] == logger, record
    assert isinstance(record["process.pid"], int), record
    assert record["ecs.version"], record


def start(spawn, *extra, workers=1):
    args = ["--log-format", "json", "--access-logfile", "-", *extra]
    server = spawn.start("wsgiapp:application", args=args, workers=workers)
    # The harness's readiness probe is logged too; wait for it, so marks
    # taken after this see only the test's own lines.
    server.stdout.wait_for(r'"url.path":"/"')
    return server


def test_access_and_error_lines_are_ecs_json(spawn):
    server = start(spawn)
    mark_out = len(server.stdout.lines)
    # Raw bytes: a UTF-8 user agent, and a Referer that is not UTF-8
    # (shown as ISO-8859-1, as the WSGI environ holds it).
    agent = 'ua "quoted"\\ \tcafé'
    reply = server.raw(b"GET /echo?a=1&b=%22 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                       b"User-Agent: " + agent.encode() + b"\r\nX-Request-Id: rid-7\r\n"
                       b"Referer: http://r/\xe9\r\nContent-Length: 5\r\n\r\nhello")
    assert reply.data.startswith(b"HTTP/1.1 200 "), reply
    server.stdout.wait_for(r'"url.path":"/echo"', start=mark_out)
    (access,) = records(server.stdout, mark_out)
    check_common(access, "ferricorn.access")
    assert access["log.level"] == "INFO"
    assert access["http.request.method"] == "GET"
    assert access["url.original"] == "/echo?a=1&b=%22"
    assert access["url.path"] == "/echo"
    assert access["url.query"] == "a=1&b=%22"
    assert access["http.version"] == "1.1"
    assert access["http.response.status_code"] == 200
    assert access["http.response.body.bytes"] == 5
    assert isinstance(access["event.duration"], int) and access["event.duration"] > 0
    assert access["client.address"] == "127.0.0.1"
    assert access["user_agent.original"] == agent
    assert access["http.request.id"] == "rid-7"
    assert access["http.request.referrer"] == "http://r/\xe9"
    # `message` is the --access-logformat line (gunicorn's default format),
    # which shows each byte as one character.
    latin1_agent = agent.encode().decode("latin-1")
    assert access["message"].endswith(
        ' "GET /echo?a=1&b=%22 HTTP/1.1" 200 5 "http://r/\xe9" "'
        + latin1_agent.replace('"', '\\"').replace("\t", "\\x09") + '"'), access["message"]
    assert access["message"].startswith("127.0.0.1 - - [")
    # The error log: boot lines and everything else are JSON too.
    errors = records(server.stderr)
    for record in errors:
        check_common(record, "ferricorn.error")
    levels = {r["log.level"] for r in errors}
    assert levels <= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, levels
    assert any(r["message"].startswith("Listening at: http://127.0.0.1:") for r in errors)
    assert any(re.fullmatch(r"Booting worker with pid: \d+", r["message"]) for r in errors)


def test_access_logformat_sets_the_message(spawn):
    server = start(spawn, "--access-logformat", "%(m)s %(U)s -> %(s)s")
    mark = len(server.stdout.lines)
    assert server.get("/status?code=204")[0] == 204
    server.stdout.wait_for(r'"url.path":"/status"', start=mark)
    (access,) = records(server.stdout, mark)
    assert access["message"] == "GET /status -> 204"
    assert access["http.response.status_code"] == 204


def test_traceback_is_one_record_with_the_stack(spawn):
    server = start(spawn)
    mark = server.mark()
    assert server.get("/raise?tag=t1")[0] == 500
    server.stderr.wait_for(r"Error handling request", start=mark)
    failures = [r for r in records(server.stderr, mark)
                if r["message"].startswith("Error handling request")]
    assert len(failures) == 1, failures
    (record,) = failures
    check_common(record, "ferricorn.error")
    assert record["log.level"] == "ERROR"
    assert record["message"] == "Error handling request /raise?tag=t1"
    stack = record["error.stack_trace"]
    assert stack.startswith("Traceback (most recent call last):\n"), stack
    assert 'wsgiapp.py", line' in stack
    assert stack.rstrip().endswith("ValueError: boom from the app t1"), stack
    assert record["error.type"] == "ValueError"
    assert record["error.message"] == "boom from the app t1"
    # No stray line carries a piece of the traceback.
    assert all("Traceback" not in r["message"] for r in records(server.stderr, mark))


def test_rejected_request_logs_json_lines(spawn):
    server = start(spawn)
    mark, mark_out = server.mark(), len(server.stdout.lines)
    reply = server.raw(b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header: 1\r\n\r\n")
    assert reply.data.startswith(b"HTTP/1.1 400 "), reply
    server.stderr.wait_for(r"Invalid request from ip=127\.0\.0\.1", start=mark)
    server.stdout.wait_for(r'"http.response.status_code":400', start=mark_out)
    (warning,) = [r for r in records(server.stderr, mark)
                  if r["message"].startswith("Invalid request")]
    assert warning["log.level"] == "WARNING"
    (access,) = records(server.stdout, mark_out)
    check_common(access, "ferricorn.access")
    assert access["http.response.status_code"] == 400
    assert access["http.request.method"] == "GET"
    assert access["url.path"] == "/x"
    assert access["client.address"] == "127.0.0.1"


def test_wsgi_errors_text_is_a_record(spawn):
    server = start(spawn)
    mark = server.mark()
    assert server.get("/errors?msg=hi%20there")[0] == 200
    server.stderr.wait_for(r"wsgi\.errors says", start=mark)
    (record,) = [r for r in records(server.stderr, mark)
                 if r["log.logger"] == "wsgi.errors"]
    assert record["message"] == "wsgi.errors says hi there"
    assert list(record)[:3] == ECS_FIRST


def test_unknown_log_format_is_refused(ferricorn_bin):
    done = run_ferricorn(ferricorn_bin, ["--log-format", "yaml", "wsgiapp:application"])
    assert done.returncode != 0
    assert "log-format" in done.stderr or "log_format" in done.stderr, done.stderr
    assert "json" in done.stderr, done.stderr
