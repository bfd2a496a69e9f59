"""Log lines go to stderr and are appended to the log file (``logs/backup.log``).

When stderr already is that file (cron's ``>> logs/backup.log 2>&1``), lines are written once.
Every control character in a message (newline, carriage return, escape, other C0/C1 codes) is
written escaped, so a file or database name can never start a forged log line. The log folder
is created 0700 and the log file 0600.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%SZ"

log = logging.getLogger("rfbackup")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """``a\\nb`` for ``a<newline>b``: one log record stays one line on any terminal."""
    return _CONTROL.sub(lambda m: _NAMED.get(m[0]) or f"\\x{ord(m[0]):02x}", text)


class _UTCFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return escape_controls(super().formatException(ei))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime(datefmt or DATEFMT, time.gmtime(record.created))


class _PrivateFileHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The log file, opened 0600 without following a symlink; closed with the handler."""

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            super().close()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when it was set up
    (main() can run more than once in one process, e.g. in tests that capture stderr)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def is_set_up() -> bool:
    """True once :func:`setup` has put our stderr handler in place (other handlers, such as a
    test runner's capture, do not count: a message logged only there would reach no one)."""
    return any(isinstance(h, _StderrHandler) for h in log.handlers)


def setup(log_file: Path | None, verbose: bool = False) -> None:
    root = logging.getLogger("rfbackup")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    fmt = _UTCFormatter(FORMAT, DATEFMT)
    stderr = _StderrHandler()
    stderr.setFormatter(fmt)
    root.addHandler(stderr)
    if log_file is None or _same_file(sys.stderr, log_file):
        return
    try:
        log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        handler = _PrivateFileHandler(os.fdopen(fd, "a", encoding="utf-8"))
    except OSError as exc:
        log.warning("cannot append to %s (%s); logging to stderr only", log_file, exc.strerror)
        return
    handler.setFormatter(fmt)
    root.addHandler(handler)


def _same_file(stream: object, path: Path) -> bool:
    try:
        a = os.fstat(stream.fileno())  # type: ignore[attr-defined]
        b = path.stat()
    except (OSError, AttributeError, ValueError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
