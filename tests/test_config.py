"""Configuration: --check-config, --print-config, TOML files, environment
variables, and refusal of bad values before anything is bound."""
import re
import socket

import pytest

from harness import APPS_DIR, run_ferricorn


def test_check_config_good_app(ferricorn_bin):
    """--check-config with an importable app exits 0 without serving."""
    proc = run_ferricorn(ferricorn_bin, ["--check-config", "--chdir", str(APPS_DIR), "hello:app"])
    assert proc.returncode == 0, proc.stderr
    assert "Listening at" not in proc.stderr


def test_check_config_missing_module(ferricorn_bin):
    """--check-config with a missing module exits non-zero, naming it."""
    proc = run_ferricorn(ferricorn_bin, ["--check-config", "--chdir", str(APPS_DIR),
                                         "nosuchmodule:app"])
    assert proc.returncode != 0
    assert "nosuchmodule" in proc.stderr


def test_print_config_lists_settings_with_sources(ferricorn_bin):
    """--print-config prints every setting with its value and where it came
    from (command line vs default), and exits 0."""
    proc = run_ferricorn(ferricorn_bin, ["--print-config", "-w", "3", "hello:app"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "workers = 3  # command line" in lines
    assert 'wsgi_app = "hello:app"  # command line' in lines
    assert "timeout = 30  # default" in lines
    assert re.search(r"^bind = \[.*\]  # default$", proc.stdout, re.M)


def test_config_file_workers(spawn, tmp_path):
    """-c file.toml with `workers = 2` boots two workers."""
    config = tmp_path / "ferricorn.toml"
    config.write_text("workers = 2\n")
    server = spawn.start("wsgiapp:application", args=["-c", str(config)], workers=2)
    assert len(set(server.booted_pids())) == 2


def test_env_workers(spawn):
    """FERRICORN_WORKERS=2 boots two workers."""
    server = spawn.start("wsgiapp:application", env={"FERRICORN_WORKERS": "2"}, workers=2)
    assert len(set(server.booted_pids())) == 2


def test_env_cmd_args(spawn):
    """FERRICORN_CMD_ARGS="-w 2" boots two workers."""
    server = spawn.start("wsgiapp:application", env={"FERRICORN_CMD_ARGS": "-w 2"}, workers=2)
    assert len(set(server.booted_pids())) == 2


def refused_before_binding(ferricorn_bin, args):
    """Runs ferricorn with `args` plus `-b` on a port this test holds
    listening: had ferricorn bound before validating, it would fail with
    exit 1 (address in use). Checks exit 2, nothing bound or booted, and
    returns stderr."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = run_ferricorn(ferricorn_bin, ["-b", "127.0.0.1:%d" % port, "--chdir",
                                             str(APPS_DIR), *args, "hello:app"], timeout=15)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    for sign_of_binding in ("Listening at", "Booting worker", "in use", "cannot listen"):
        assert sign_of_binding not in proc.stderr, proc.stderr
    return proc.stderr


def test_unknown_toml_key_refused(ferricorn_bin, tmp_path):
    """An unknown key in the TOML file: exit 2 naming the key, before binding."""
    config = tmp_path / "bad.toml"
    config.write_text("workers = 1\nno_such_setting = 3\n")
    stderr = refused_before_binding(ferricorn_bin, ["-c", str(config)])
    assert "no_such_setting" in stderr


def test_bad_workers_value_refused(ferricorn_bin):
    """-w abc: exit 2 naming --workers and the value, before binding."""
    stderr = refused_before_binding(ferricorn_bin, ["-w", "abc"])
    assert "--workers" in stderr and "'abc'" in stderr


def test_bad_bind_port_refused(ferricorn_bin):
    """-b 127.0.0.1:99999 (besides a good bind): exit 2 naming --bind and
    the value, before binding the good one."""
    stderr = refused_before_binding(ferricorn_bin, ["-b", "127.0.0.1:99999"])
    assert "--bind" in stderr and "99999" in stderr


def test_unsupported_flag_refused(ferricorn_bin):
    """--protocol: `error: --protocol is not supported yet`, exit 2."""
    proc = run_ferricorn(ferricorn_bin, ["--protocol", "uwsgi", "hello:app"])
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --protocol is not supported yet"


@pytest.mark.parametrize("worker_class", ["gevent", "eventlet"])
def test_unsupported_worker_class_refused(ferricorn_bin, worker_class):
    """A gunicorn worker class ferricorn does not implement is refused with
    exit 2, before binding."""
    proc = run_ferricorn(ferricorn_bin, ["-k", worker_class, "-b", "127.0.0.1:0",
                                         "--chdir", str(APPS_DIR), "hello:app"])
    assert proc.returncode == 2, proc.stderr
    assert "Listening at" not in proc.stderr
