"""Timeouts watched by the master: a worker that does not become ready
within --timeout (boot timeout), and --request-timeout."""
import signal

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
    old = server.booted_pids()
    flag.write_text("1")
    mark = server.mark()
    server.signal(signal.SIGHUP)
    server.stderr.wait_for(r"WORKER BOOT TIMEOUT \(pid:\d+\)", start=mark, timeout=10)
    server.stderr.wait_for(r"The running workers keep serving", start=mark, timeout=10)
    assert server.get("/")[0] == 200
    assert server.booted_pids()[0] == old[0]
    assert server.proc.poll() is None
