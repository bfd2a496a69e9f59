"""Bounds shared by config.py and the command-line options, in a module that imports nothing
(the CLI reads them at start-up, before any configuration is loaded)."""

MAX_DAYS = 36_500  # keep-days beyond a century are a typo (and overflow date arithmetic)
