"""ferricorn installed with pip: the console script and `python -m
ferricorn` serve from their own virtualenv, activated or not, and never
see the system's packages."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import APPS_DIR, Server, run_ferricorn

# What an unactivated service sees: no venv on PATH, and a VIRTUAL_ENV that
# names somewhere else (the old embedded binary trusted it).
UNACTIVATED = {"PATH": "/usr/bin:/bin", "VIRTUAL_ENV": "/nonexistent"}


@pytest.fixture(scope="module")
def venv_python(ferricorn_bin):
    """The python of the venv that FERRICORN_BIN belongs to."""
    python = Path(ferricorn_bin).parent / "python"
    if not python.exists():
        pytest.skip("FERRICORN_BIN is not a virtualenv's console script")
    return python


def ask(python, code):
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()


def test_console_script_serves_from_its_venv_unactivated(ferricorn_bin, venv_python):
    venv = venv_python.parent.parent
    with Server(ferricorn_bin, "whichpython:app", args=["-w", "2"], workers=2,
                env=UNACTIVATED) as server:
        status, _, body = server.get("/")
    assert status == 200, body
    seen = json.loads(body)
    assert Path(seen["prefix"]) == venv, seen
    assert Path(seen["executable"]).parent == venv / "bin", seen
    assert Path(seen["flask"]).is_relative_to(venv), seen


def test_python_dash_m_ferricorn_serves(ferricorn_bin, venv_python, tmp_path):
    """`python -m ferricorn` takes the same command line."""
    launcher = tmp_path / "ferricorn-m"
    launcher.write_text('#!/bin/sh\nexec "%s" -m ferricorn "$@"\n' % venv_python)
    launcher.chmod(0o755)
    with Server(str(launcher), "hello:app", env=UNACTIVATED) as server:
        status, _, body = server.get("/")
    assert (status, body) == (200, b"Hello, world!\n")


def test_venv_without_flask_does_not_see_the_systems(venv_python, tmp_path):
    """A venv holding ferricorn but not Flask cannot load a Flask app, even
    though the interpreter it was made from may have Flask: exit 4, the
    ImportError logged."""
    bare = tmp_path / "bare"
    subprocess.run([str(venv_python), "-m", "venv", "--without-pip", str(bare)],
                   check=True, timeout=60)
    package = ask(venv_python, "import ferricorn, os; print(os.path.dirname(ferricorn.__file__))")
    site = ask(bare / "bin" / "python", "import sysconfig; print(sysconfig.get_path('purelib'))")
    shutil.copytree(package, Path(site) / "ferricorn")
    launcher = tmp_path / "ferricorn-bare"
    launcher.write_text('#!/bin/sh\nexec "%s" -m ferricorn "$@"\n' % (bare / "bin" / "python"))
    launcher.chmod(0o755)

    proc = run_ferricorn(str(launcher), ["--chdir", str(APPS_DIR), "whichpython:app"],
                         env=UNACTIVATED)
    assert proc.returncode == 4, proc.stderr
    assert "No module named 'flask'" in proc.stderr, proc.stderr
    assert "App failed to load" in proc.stderr, proc.stderr
