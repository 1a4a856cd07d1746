"""--log-config (ini), --log-config-json and logconfig_dict: Python's
logging.config sets up the gunicorn.error and gunicorn.access loggers, as in
gunicorn, and ferricorn's error and access lines become their records."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness import APPS_DIR, IO_TIMEOUT, STOP_TIMEOUT, child_env, run_ferricorn

PLAIN = "%(name)s %(levelname)s %(message)s"
STDERR_FMT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"


def dict_config(log_file, formatter=None):
    """Both loggers to `log_file`; error lines also to stderr, where the
    harness waits for 'Listening at' and 'Booting worker'."""
    return {
        "version": 1,
        "formatters": {
            "plain": formatter or {"format": PLAIN},
            "stderr": {"format": STDERR_FMT},
        },
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(log_file),
                     "formatter": "plain"},
            "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                       "formatter": "stderr"},
        },
        "root": {"level": "WARNING", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["file", "stderr"],
                               "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["file"], "propagate": False},
        },
    }


def toml_value(value):
    """`value` as a TOML inline value (JSON strings are valid TOML strings)."""
    if isinstance(value, dict):
        return "{ %s }" % ", ".join("%s = %s" % (json.dumps(k), toml_value(v))
                                     for k, v in value.items())
    if isinstance(value, list):
        return "[%s]" % ", ".join(toml_value(v) for v in value)
    return json.dumps(value)


def lines_of(path):
    with open(path) as handle:
        return handle.read().splitlines()


def wait_for_lines(path, pattern, count=1, timeout=IO_TIMEOUT):
    """The lines of `path` matching `pattern`, once there are `count`."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    found = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            found = [line for line in lines_of(path) if regex.search(line)]
            if len(found) >= count:
                return found
        time.sleep(0.02)
    text = "\n".join(lines_of(path)) if os.path.exists(path) else "(no file)"
    raise AssertionError("%d lines matching %r not in %s:\n%s" % (count, pattern, path, text))


def stop(server):
    server.signal(signal.SIGTERM)
    assert server.wait() == 0, server.log()


def test_logconfig_dict_in_toml_sends_error_and_access_lines_to_a_file(spawn, tmp_path):
    log_file = tmp_path / "app.log"
    config = tmp_path / "ferricorn.toml"
    config.write_text("logconfig_dict = %s\n" % toml_value(dict_config(log_file)))
    # One worker: it answered, so it is past its signal setup and stops
    # gracefully on TERM (a worker TERMed while booting just dies).
    server = spawn.start("hello:app", args=["-c", str(config)])
    status, _, _ = server.get("/logconfig-probe")
    assert status == 200
    access = wait_for_lines(log_file, r"GET /logconfig-probe ")
    assert re.fullmatch(r'gunicorn\.access INFO 127\.0\.0\.1 - - \[[^]]+\] '
                        r'"GET /logconfig-probe HTTP/1\.1" 200 14 "-" "-"', access[0]), access
    for pid in server.booted_pids():
        assert "gunicorn.error INFO Booting worker with pid: %d" % pid in lines_of(log_file)
    listening = wait_for_lines(log_file, r"Listening at: ")
    assert listening[0].startswith("gunicorn.error INFO Listening at: http://127.0.0.1:")
    stop(server)
    # Queued records are flushed before each process exits.
    lines = lines_of(log_file)
    assert "gunicorn.error INFO Handling signal: term" in lines, lines
    assert lines[-1] == "gunicorn.error INFO Shutting down: Master", lines
    (pid,) = server.booted_pids()
    assert "gunicorn.error INFO Worker exiting (pid: %d)" % pid in lines, lines
    # Every record went through the configured formatter.
    assert all(line.startswith(("gunicorn.error ", "gunicorn.access ")) for line in lines), lines


def test_log_config_json_with_a_formatter_class_formats_in_each_worker(spawn, tmp_path):
    log_file = tmp_path / "app.log"
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(dict_config(log_file, {"()": "logfmt.PidFormatter"})))
    server = spawn.start("hello:app", args=["--log-config-json", str(config), "-w", "2"],
                         workers=2)
    master = server.proc.pid
    workers = server.booted_pids()
    for pid in workers:
        # Logged by the worker itself: its own pid formats the record.
        wait_for_lines(log_file, r"^PIDFMT %d gunicorn\.error INFO Booting worker with pid: %d$"
                       % (pid, pid))
    wait_for_lines(log_file, r"^PIDFMT %d gunicorn\.error INFO Listening at: " % master)
    for n in range(6):
        assert server.get("/n%d" % n)[0] == 200
    access = wait_for_lines(log_file, r'"GET /n\d HTTP/1\.1" 200', count=6)
    for line in access:
        pid = int(line.split()[1])
        assert pid in workers, (line, workers)
        assert line.split()[2:4] == ["gunicorn.access", "INFO"], line


def test_ini_log_config_goes_through_file_config(spawn, tmp_path):
    config = tmp_path / "logging.ini"
    # %(here)s is the ini file's directory, as gunicorn passes it.
    config.write_text("""\
[loggers]
keys=root, gunicorn.error, gunicorn.access

[handlers]
keys=file, stderr

[formatters]
keys=plain, stderr

[logger_root]
level=WARNING
handlers=

[logger_gunicorn.error]
level=INFO
handlers=file, stderr
propagate=0
qualname=gunicorn.error

[logger_gunicorn.access]
level=INFO
handlers=file
propagate=0
qualname=gunicorn.access

[handler_file]
class=logging.FileHandler
formatter=plain
args=('%(here)s/ini.log', 'a')

[handler_stderr]
class=StreamHandler
formatter=stderr
args=(sys.stderr,)

[formatter_plain]
format=INI %(name)s %(levelname)s %(message)s

[formatter_stderr]
format=%(asctime)s [%(process)d] [%(levelname)s] %(message)s
""")
    server = spawn.start("hello:app", args=["--log-config", str(config)])
    (pid,) = server.booted_pids()
    log_file = tmp_path / "ini.log"
    wait_for_lines(log_file, r"^INI gunicorn\.error INFO Booting worker with pid: %d$" % pid)
    assert server.get("/ini")[0] == 200
    wait_for_lines(log_file, r'^INI gunicorn\.access INFO .*"GET /ini HTTP/1\.1" 200')


def test_a_logger_the_config_leaves_alone_keeps_ferricorns_own_log(spawn, tmp_path):
    """The user's "loggers" replaces gunicorn's defaults (a shallow update):
    gunicorn.error keeps the --error-logfile handler, as in gunicorn."""
    log_file = tmp_path / "access.log"
    config = dict_config(log_file)
    del config["loggers"]["gunicorn.error"]
    config["handlers"].pop("stderr")
    config["formatters"].pop("stderr")
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config))
    server = spawn.start("hello:app", args=["--log-config-json", str(path)])
    assert server.get("/left-alone")[0] == 200
    wait_for_lines(log_file, r'^gunicorn\.access INFO .*"GET /left-alone ')
    # ferricorn's gunicorn-format error line, on stderr, not in the file.
    assert re.search(r"^\[[^]]+\] \[\d+\] \[INFO\] Booting worker with pid: ",
                     server.log(), re.M), server.log()
    assert not any("Booting" in line for line in lines_of(log_file))


def threads_named(pid, name):
    names = []
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, task)) as handle:
            names.append(handle.read().strip())
    return names.count(name)


def test_the_logging_thread_runs_only_with_a_logconfig(spawn, tmp_path):
    plain = spawn.start("hello:app", args=["--access-logfile", "-"])
    (worker,) = plain.booted_pids()
    assert threads_named(plain.proc.pid, "ferricorn-log") == 0
    assert threads_named(worker, "ferricorn-log") == 0
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(dict_config(tmp_path / "x.log")))
    configured = spawn.start("hello:app", args=["--log-config-json", str(path)])
    (worker,) = configured.booted_pids()
    assert threads_named(configured.proc.pid, "ferricorn-log") == 1
    assert threads_named(worker, "ferricorn-log") == 1


def test_bad_logconfig_stops_startup_naming_the_setting(tmp_path, ferricorn_bin):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    bad_dict = tmp_path / "bad.toml"
    bad_dict.write_text('[logconfig_dict.handlers.h]\nclass = "nosuchmodule.Handler"\n')
    cases = [
        (["--log-config", str(tmp_path / "missing.ini")], "--log-config",
         "log config '%s' not found" % (tmp_path / "missing.ini")),
        (["--log-config-json", str(bad_json)], "--log-config-json", "JSONDecodeError: "),
        (["--log-config-json", str(tmp_path / "missing.json")], "--log-config-json",
         "FileNotFoundError: "),
        (["-c", str(bad_dict)], "logconfig_dict",
         "ValueError: Unable to configure handler 'h' (ValueError: "
         "Cannot resolve 'nosuchmodule.Handler': No module named 'nosuchmodule')"),
    ]
    for args, setting, detail in cases:
        result = run_ferricorn(ferricorn_bin, ["-b", "127.0.0.1:0", *args, "hello:app"])
        assert result.returncode == 2, (args, result.stderr)
        assert "error: %s could not be applied: " % setting in result.stderr, result.stderr
        assert detail in result.stderr, result.stderr
        assert "Booting worker" not in result.stderr, result.stderr


def logger_levels(path):
    """(logger, level, what) of the lines both servers write, by message."""
    kinds = {
        "Listening at: ": "listening", "Booting worker with pid: ": "booting",
        "Handling signal: term": "term", "Worker exiting (pid: ": "exiting",
        "Shutting down: Master": "shutdown", '"GET /same HTTP/1.1" 200': "access",
    }
    seen = set()
    for line in lines_of(path):
        name, level, message = line.split(" ", 2)
        for needle, kind in kinds.items():
            if needle in message:
                seen.add((name, level, kind))
    return seen


def run_gunicorn(config, log_file):
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--log-config-json", str(config),
         "-b", "127.0.0.1:0", "--chdir", str(APPS_DIR), "hello:app"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=child_env(), cwd=APPS_DIR, start_new_session=True)
    try:
        listening = wait_for_lines(log_file, r"Listening at: http://127\.0\.0\.1:(\d+)",
                                   timeout=20)
        wait_for_lines(log_file, r"Booting worker with pid: ", timeout=20)
        port = int(re.search(r":(\d+) \(", listening[0]).group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=IO_TIMEOUT)
        conn.request("GET", "/same")
        assert conn.getresponse().status == 200
        conn.close()
        wait_for_lines(log_file, r"GET /same ")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_same_logger_names_and_levels_as_gunicorn(spawn, tmp_path):
    ours, theirs = tmp_path / "ferricorn.log", tmp_path / "gunicorn.log"
    for log_file in (ours, theirs):
        config = dict_config(log_file)
        config["loggers"]["gunicorn.error"]["handlers"] = ["file", "stderr"]
        (tmp_path / (log_file.stem + ".json")).write_text(json.dumps(config))
    run_gunicorn(tmp_path / "gunicorn.json", theirs)
    server = spawn.start("hello:app", args=["--log-config-json", str(tmp_path / "ferricorn.json")])
    assert server.get("/same")[0] == 200
    wait_for_lines(ours, r"GET /same ")
    stop(server)
    expected = {
        ("gunicorn.error", "INFO", "listening"), ("gunicorn.error", "INFO", "booting"),
        ("gunicorn.error", "INFO", "term"), ("gunicorn.error", "INFO", "exiting"),
        ("gunicorn.error", "INFO", "shutdown"), ("gunicorn.access", "INFO", "access"),
    }
    assert logger_levels(theirs) == expected
    assert logger_levels(ours) == expected


def test_usr1_reopens_the_handlers_files(spawn, tmp_path):
    """As gunicorn's reopen_files: every FileHandler opens its path again,
    in the master and in each worker."""
    log_file = tmp_path / "app.log"
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(dict_config(log_file)))
    server = spawn.start("hello:app", args=["--log-config-json", str(path), "-w", "2"],
                         workers=2)
    assert server.get("/before")[0] == 200
    wait_for_lines(log_file, r"GET /before ")
    os.rename(log_file, tmp_path / "app.log.1")
    server.signal(signal.SIGUSR1)
    wait_for_lines(log_file, r"^gunicorn\.error INFO Handling signal: usr1$")
    for n in range(20):
        assert server.get("/after-%d" % n)[0] == 200
    wait_for_lines(log_file, r'"GET /after-\d+ HTTP', count=20)
    old = (tmp_path / "app.log.1").read_text()
    assert "/after-" not in old, old


def test_hup_applies_the_changed_configuration_to_new_workers(spawn, tmp_path):
    log_file = tmp_path / "app.log"
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(dict_config(log_file, {"format": "V1 " + PLAIN})))
    server = spawn.start("hello:app", args=["--log-config-json", str(path)])
    (old,) = server.booted_pids()
    wait_for_lines(log_file, r"^V1 gunicorn\.error INFO Booting worker with pid: %d$" % old)
    path.write_text(json.dumps(dict_config(log_file, {"format": "V2 " + PLAIN})))
    mark = server.mark()
    server.signal(signal.SIGHUP)
    new = int(server.stderr.wait_for(r"Booting worker with pid: (\d+)", start=mark,
                                     timeout=20)[0].group(1))
    assert new != old
    wait_for_lines(log_file, r"^V2 gunicorn\.error INFO Booting worker with pid: %d$" % new)
    # Only the new worker is left to answer.
    server.stderr.wait_for(r"Worker exiting \(pid: %d\)" % old, start=mark, timeout=20)
    assert server.get("/after-hup")[0] == 200
    wait_for_lines(log_file, r'^V2 gunicorn\.access INFO .*"GET /after-hup ')


def test_wsgi_errors_text_is_an_error_record(spawn, tmp_path):
    log_file = tmp_path / "app.log"
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(dict_config(log_file)))
    server = spawn.start("wsgiapp:application", args=["--log-config-json", str(path)])
    assert server.get("/errors?msg=hello-errors")[0] == 200
    wait_for_lines(log_file, r"^gunicorn\.error ERROR wsgi\.errors says hello-errors$")


def unix_get(path, target, timeout=20):
    """GET `target` over the unix socket `path`, retrying until the server
    is up; the status code."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(IO_TIMEOUT)
                sock.connect(str(path))
                sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                             % target.encode())
                reply = sock.recv(65536)
                return int(reply.split()[1])
        except (FileNotFoundError, ConnectionRefusedError):
            assert time.monotonic() < deadline, "server never answered on %s" % path
            time.sleep(0.05)


def test_the_configurations_levels_apply_not_log_level(spawn, tmp_path, ferricorn_bin):
    """gunicorn sets --log-level, then dictConfig sets the logger's level."""
    loud_file = tmp_path / "loud.log"
    (tmp_path / "loud.json").write_text(json.dumps(dict_config(loud_file)))
    # --log-level error, but the logger says INFO: INFO lines are logged.
    server = spawn.start("wsgiapp:application", args=[
        "--log-config-json", str(tmp_path / "loud.json"), "--log-level", "error"])
    (pid,) = server.booted_pids()
    wait_for_lines(loud_file, r"^gunicorn\.error INFO Booting worker with pid: %d$" % pid)

    # --log-level debug, but the logger says ERROR: only errors.
    quiet_file, sock = tmp_path / "quiet.log", tmp_path / "s.sock"
    quiet = dict_config(quiet_file)
    quiet["loggers"]["gunicorn.error"] = {"level": "ERROR", "handlers": ["file"]}
    (tmp_path / "quiet.json").write_text(json.dumps(quiet))
    proc = subprocess.Popen(
        [ferricorn_bin, "-b", "unix:%s" % sock, "--chdir", str(APPS_DIR), "--log-level", "debug",
         "--log-config-json", str(tmp_path / "quiet.json"), "wsgiapp:application"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=child_env(), cwd=APPS_DIR, start_new_session=True)
    try:
        assert unix_get(sock, "/raise") == 500
        wait_for_lines(quiet_file, r"^gunicorn\.error ERROR Error handling request /raise")
        wait_for_lines(quiet_file, r'^gunicorn\.access INFO .*"GET /raise HTTP/1\.1" 500')
        lines = lines_of(quiet_file)
        assert not [line for line in lines if line.startswith("gunicorn.error INFO")], lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("app, args", [
    ("hello:app", ["-k", "gthread", "--threads", "2"]),
    ("asgiraw:app", ["-k", "async"]),
])
def test_every_worker_class_logs_access_lines_to_the_handlers(spawn, tmp_path, app, args):
    log_file = tmp_path / "app.log"
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(dict_config(log_file)))
    server = spawn.start(app, args=["--log-config-json", str(path), *args])
    status = server.get("/per-class")[0]
    wait_for_lines(log_file, r'^gunicorn\.access INFO .*"GET /per-class HTTP/1\.1" %d ' % status)
    (pid,) = server.booted_pids()
    wait_for_lines(log_file, r"^gunicorn\.error INFO Booting worker with pid: %d$" % pid)
