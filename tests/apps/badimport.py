"""A module whose import raises: the master must exit 4 with the traceback."""
raise RuntimeError("import-time failure marker 7f3a")
