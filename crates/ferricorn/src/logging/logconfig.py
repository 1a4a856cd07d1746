"""ferricorn's Python side of gunicorn's logconfig settings.

`setup` configures Python logging as gunicorn 27's `glogging.Logger.setup`
does for `logconfig_dict`, `--log-config-json` and `--log-config`; `emit`
then hands ferricorn's error and access lines, as records of the
`gunicorn.error` and `gunicorn.access` loggers, to whatever handlers that
configuration installed.
"""

import copy
import json
import logging
import logging.config
import os
import sys
import traceback

# gunicorn 27's glogging.CONFIG_DEFAULTS, which the user's dict updates
# (shallowly: a user's "loggers" replaces these loggers).
CONFIG_DEFAULTS = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {
            "level": "INFO",
            "handlers": ["error_console"],
            "propagate": True,
            "qualname": "gunicorn.error",
        },
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["console"],
            "propagate": True,
            "qualname": "gunicorn.access",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "generic": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
            "class": "logging.Formatter",
        }
    },
}

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

ERROR_LOG = logging.getLogger("gunicorn.error")
ACCESS_LOG = logging.getLogger("gunicorn.access")

# What setup() says about a logger the configuration left alone, or
# disabled; any other number is the level from which records are sent.
BUILTIN = 0
OFF = -1


class BuiltinSink(logging.NullHandler):
    """Stands where gunicorn puts its own handler (the --error-logfile or
    --access-logfile one). A configuration that names the logger removes
    it, as it removes gunicorn's; one that does not leaves it, and then
    ferricorn keeps writing that log itself."""


def setup(kind, value, loglevel):
    """Applies the configuration; returns (error route, access route)."""
    for log in (ERROR_LOG, ACCESS_LOG):
        log.propagate = False
        for handler in list(log.handlers):
            if isinstance(handler, BuiltinSink):
                log.removeHandler(handler)
        log.addHandler(BuiltinSink())
    ERROR_LOG.setLevel(LEVELS.get(loglevel, logging.INFO))
    ACCESS_LOG.setLevel(logging.INFO)
    if kind == "dict":
        config = copy.deepcopy(CONFIG_DEFAULTS)
        config.update(json.loads(value))
        logging.config.dictConfig(config)
    elif kind == "json":
        with open(value) as file:
            config_json = json.load(file)
        config = copy.deepcopy(CONFIG_DEFAULTS)
        config.update(config_json)
        logging.config.dictConfig(config)
    else:
        if not os.path.exists(value):
            raise RuntimeError("log config '%s' not found" % value)
        defaults = copy.deepcopy(CONFIG_DEFAULTS)
        defaults["__file__"] = value
        defaults["here"] = os.path.dirname(value)
        logging.config.fileConfig(value, defaults=defaults, disable_existing_loggers=False)
    return route(ERROR_LOG), route(ACCESS_LOG)


def route(log):
    if log.disabled:
        return OFF
    if any(isinstance(handler, BuiltinSink) for handler in log.handlers):
        return BUILTIN
    return max(log.getEffectiveLevel(), 1)


def reset():
    """No configuration any more (a HUP removed it): ferricorn writes both
    logs itself again."""
    for log in (ERROR_LOG, ACCESS_LOG):
        for handler in list(log.handlers):
            if isinstance(handler, BuiltinSink):
                log.removeHandler(handler)


def reopen():
    """USR1, as gunicorn's Logger.reopen_files: every FileHandler of every
    logger opens its file again (logrotate moved it)."""
    root = logging.root
    for log in [logging.getLogger(name) for name in list(root.manager.loggerDict)]:
        for handler in getattr(log, "handlers", []):
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    if handler.stream:
                        handler.close()
                        handler.stream = handler._open()
                finally:
                    handler.release()


def emit(records):
    """Logs each (level, access?, message, created) record."""
    for level, access, message, created in records:
        log = ACCESS_LOG if access else ERROR_LOG
        try:
            if not log.isEnabledFor(level):
                continue
            record = log.makeRecord(log.name, level, "ferricorn", 0, message, None, None)
            # When ferricorn logged it, not when this thread got to it.
            record.created = created
            record.msecs = (created - int(created)) * 1000
            record.relativeCreated = (created - getattr(logging, "_startTime", created)) * 1000
            log.handle(record)
        except Exception:
            # As logging.Handler.handleError: a broken filter or handler
            # costs its record, never the process.
            traceback.print_exc(file=sys.stderr)
