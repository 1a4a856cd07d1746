"""Writes to the worker's stdout and stderr (for --capture-output and
-R/--enable-stdio-inheritance): GET /?msg=X prints `stdout says X` and
`stderr says X`, flushed."""
import sys
from urllib.parse import parse_qs


def app(environ, start_response):
    msg = parse_qs(environ.get("QUERY_STRING", "")).get("msg", ["nothing"])[-1]
    print("stdout says %s" % msg, flush=True)
    print("stderr says %s" % msg, file=sys.stderr, flush=True)
    body = b"printed"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
