"""For --preload: tells which process imported it, which worker serves, and
the first random number each worker drew (equal in every worker unless
`random` was reseeded after fork)."""
import json
import os
import random
import time

IMPORTED_IN = os.getpid()
_first_random = None


def application(environ, start_response):
    global _first_random
    if _first_random is None:
        _first_random = random.random()
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.5)
    body = json.dumps({"pid": os.getpid(), "imported_in": IMPORTED_IN,
                       "random": _first_random}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
