"""Continuous HTTP load for reload tests: `hey` when it is installed (200
connections, as the lifecycle issue asks), else a pool of Python threads.

Start it, act on the server while it runs, then `finish()`: the load stops
and every request that was sent is accounted for (status or error).
"""
import http.client
import re
import shutil
import signal
import subprocess
import threading
from collections import Counter

# hey runs until interrupted; this only bounds a test that forgets to stop it.
MAX_SECONDS = 60
FINISH_TIMEOUT = 30


class LoadResult:
    def __init__(self, statuses, errors):
        self.statuses = Counter(statuses)  # HTTP status -> count
        self.errors = Counter(errors)      # error text -> count

    @property
    def total(self):
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def failed(self):
        return sum(self.errors.values())

    @property
    def non_2xx(self):
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def __repr__(self):
        return "LoadResult(total=%d, statuses=%s, errors=%s)" % (
            self.total, dict(self.statuses), dict(self.errors.most_common(5)))


class Load:
    """Load on `url` with `connections` concurrent clients until finish()."""

    def __init__(self, url, connections=200):
        self.url = url
        self.connections = connections
        self.hey = shutil.which("hey")
        self._proc = None
        self._threads = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._statuses = Counter()
        self._errors = Counter()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._stop.set()

    def start(self):
        if self.hey:
            self._proc = subprocess.Popen(
                [self.hey, "-z", "%ds" % MAX_SECONDS, "-c", str(self.connections), self.url],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        else:
            for _ in range(min(self.connections, 32)):
                thread = threading.Thread(target=self._client, daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def running(self):
        if self._proc is not None:
            return self._proc.poll() is None
        return not self._stop.is_set()

    def finish(self):
        """Stops the load; returns the LoadResult."""
        if self._proc is not None:
            assert self._proc.poll() is None, "hey stopped early:\n" + self._proc.stdout.read()
            self._proc.send_signal(signal.SIGINT)  # hey then prints its report
            out, _ = self._proc.communicate(timeout=FINISH_TIMEOUT)
            return parse_hey(out)
        self._stop.set()
        for thread in self._threads:
            thread.join(FINISH_TIMEOUT)
        with self._lock:
            return LoadResult(self._statuses, self._errors)

    def _client(self):
        match = re.match(r"http://([^/:]+):(\d+)(/.*)?$", self.url)
        host, port, path = match.group(1), int(match.group(2)), match.group(3) or "/"
        while not self._stop.is_set():
            conn = http.client.HTTPConnection(host, port, timeout=10)
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                outcome = ("status", resp.status)
            except (OSError, http.client.HTTPException) as error:
                outcome = ("error", type(error).__name__)
            finally:
                conn.close()
            with self._lock:
                (self._statuses if outcome[0] == "status" else self._errors)[outcome[1]] += 1


def parse_hey(out):
    statuses, errors = Counter(), Counter()
    section = None
    for line in out.splitlines():
        if line.startswith("Status code distribution:"):
            section = "status"
        elif line.startswith("Error distribution:"):
            section = "error"
        elif section == "status" and (m := re.match(r"\s+\[(\d+)\]\s+(\d+) responses", line)):
            statuses[int(m.group(1))] += int(m.group(2))
        elif section == "error" and (m := re.match(r"\s+\[(\d+)\]\s+(.*)", line)):
            errors[m.group(2)] += int(m.group(1))
    assert statuses or errors, "no report from hey:\n" + out
    return LoadResult(statuses, errors)
