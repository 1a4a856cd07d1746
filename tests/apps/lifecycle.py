"""An app for the master-lifecycle tests: who served a request, and a way
to make a worker's memory grow.

`/` answers `ok <pid>`; `/grow?mb=N` keeps N more megabytes alive in this
worker; `/rss` answers the worker's resident memory in MB.
"""
import os
from urllib.parse import parse_qs

HOARD = []


def _respond(start_response, text):
    body = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/grow":
        mb = int(parse_qs(environ.get("QUERY_STRING", "")).get("mb", ["10"])[0])
        # bytes filled with a value, so every page is really resident.
        HOARD.append(b"x" * (mb * 1024 * 1024))
        return _respond(start_response, "grew %d MB" % mb)
    if path == "/rss":
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return _respond(start_response, str(pages * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)))
    return _respond(start_response, "ok %d" % os.getpid())
