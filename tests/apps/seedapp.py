"""The Flask app of the seed experiments (shared/seeds/001_b51eb184ac9686f3.txt):
an I/O-bound view and a CPU-bound one, plus a tiny page for load tests."""
import time

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/io_task")
def io_task():
    time.sleep(2)
    return "io_task has completed.\n"


@app.route("/cpu_task")
def cpu_task():
    # The seed loops over range(1000000000); this is the same pure-Python
    # arithmetic, bounded to about 8 s of CPU time so the test stays short.
    deadline = time.monotonic() + 8
    i = 0
    while time.monotonic() < deadline:
        for _ in range(1000):
            n = i * i * i
            i += 1
    return "CPU task has finished.\n"


@app.route("/")
def index():
    return "hello from flask\n"


@app.route("/json")
def json_route():
    return jsonify(ok=True, items=[1, 2, 3])
