"""The ``ferricorn`` command (console script and ``python -m ferricorn``)."""
import sys

from ferricorn._ferricorn import run


def main():
    """Runs ferricorn with this process's command line; returns the exit code.

    ``USR2`` starts a new master the way this one was started: this
    interpreter with its original arguments (``-m ferricorn`` or the
    script's path, then the flags), as gunicorn re-executes
    ``sys.executable``.
    """
    return run(["ferricorn", *sys.argv[1:]], [sys.executable, *sys.orig_argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
