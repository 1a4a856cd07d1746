"""A logging.Formatter subclass that logconfig tests name by class path:
it tags every line and shows the process that formatted it."""
import logging


class PidFormatter(logging.Formatter):
    def format(self, record):
        return "PIDFMT %d %s %s %s" % (record.process, record.name, record.levelname,
                                       record.getMessage())
