"""An app whose import hangs for 60 s while the file named by $SLOWBOOT_FLAG
exists (or always, when the variable is unset): a worker that never
becomes ready."""
import os
import time

_flag = os.environ.get("SLOWBOOT_FLAG")
if _flag is None or os.path.exists(_flag):
    time.sleep(60)


def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "3")])
    return [b"ok\n"]
