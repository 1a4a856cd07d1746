"""ferricorn: a pre-fork HTTP server for Python WSGI applications, in Rust.

Run it as ``ferricorn [OPTIONS] APP_MODULE`` (the console script) or
``python -m ferricorn [OPTIONS] APP_MODULE``; both take gunicorn's command
line. The server runs inside that Python process, so it uses the
interpreter and virtualenv the command belongs to.
"""
from ferricorn._ferricorn import __version__

__all__ = ["__version__"]
