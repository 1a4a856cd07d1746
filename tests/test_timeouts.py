"""Timeouts watched by the master: a worker that does not become ready
within --timeout (boot timeout), and --request-timeout."""
import signal
import threading

from harness import run_ferricorn


def test_boot_timeout_kills_the_worker_and_stops_the_master(ferricorn_bin):
    """An app whose import hangs, -t 1: the worker is killed with a log line
    naming the boot, and as no worker ever served, the master exits 3."""
    result = run_ferricorn(ferricorn_bin, ["-t", "1", "-b", "127.0.0.1:0", "slowboot:app"])
    assert result.returncode == 3, result
    assert "WORKER BOOT TIMEOUT (pid:" in result.stderr
    assert "not ready 1s after it was forked" in result.stderr
    assert "Worker failed to boot." in result.stderr


def test_boot_timeout_on_reload_keeps_the_old_worker(spawn, tmp_path):
    """Serving, then the import starts hanging and HUP: the new worker is
    killed for its boot timeout, the old one keeps serving."""
    flag = tmp_path / "hang"
    server = spawn.start("slowboot:app", args=["-t", "1"], env={"SLOWBOOT_FLAG": str(flag)})
    # The old worker must have imported the app before the flag appears,
    # or it hangs in the import too: a served request proves it has.
    assert server.get("/")[0] == 200
    old = server.booted_pids()
    flag.write_text("1")
    mark = server.mark()
    server.signal(signal.SIGHUP)
    server.stderr.wait_for(r"WORKER BOOT TIMEOUT \(pid:\d+\)", start=mark, timeout=10)
    server.stderr.wait_for(r"The running workers keep serving", start=mark, timeout=10)
    assert server.get("/")[0] == 200
    assert server.booted_pids()[0] == old[0]
    assert server.proc.poll() is None


def slow_request_replaces_worker(spawn, worker_class):
    server = spawn.start("wsgiapp:application",
                         args=["-k", worker_class, "--threads", "4", "--request-timeout", "1"])
    old = server.booted_pids()[0]
    mark = server.mark()
    result = {}

    def slow():
        result["reply"] = server.get("/sleep?s=2.5", timeout=10)
    thread = threading.Thread(target=slow)
    thread.start()
    found = server.stderr.wait_for(
        r'Request timeout: "GET /sleep\?s=2\.5 HTTP/1\.1" has run \d+s in worker \(pid:(\d+)\), '
        r"over request_timeout 1s; replacing the worker", start=mark, timeout=10)
    assert int(found[0].group(1)) == old
    new = int(server.stderr.wait_for(r"Booting worker with pid: (\d+)", start=mark)[0].group(1))
    # Replacement first: the old worker only stops once the new one serves,
    # and it finishes the slow request.
    server.stderr.wait_for(r"Worker exiting \(pid: %d\)" % old, start=mark, timeout=10)
    thread.join(10)
    assert result["reply"][0] == 200
    assert server.get("/")[0] == 200
    assert new != old
    assert server.log(mark).count("Request timeout:") == 1


def test_request_timeout_gthread(spawn):
    """gthread, --request-timeout 1, one request sleeping 2.5 s: logged with
    its request line, a replacement boots, the old worker finishes the
    request (200) and exits."""
    slow_request_replaces_worker(spawn, "gthread")


def test_request_timeout_async(spawn):
    """The same with -k async."""
    slow_request_replaces_worker(spawn, "async")
