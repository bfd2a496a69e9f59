"""Log lines go to stderr and are appended to the log file (``logs/backup.log``).

When stderr already is that file (cron's ``>> logs/backup.log 2>&1``), lines are written once.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%SZ"

log = logging.getLogger("rfbackup")


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime(datefmt or DATEFMT, time.gmtime(record.created))


def setup(log_file: Path | None, verbose: bool = False) -> None:
    root = logging.getLogger("rfbackup")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    fmt = _UTCFormatter(FORMAT, DATEFMT)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(fmt)
    root.addHandler(stderr)
    if log_file is None or _same_file(sys.stderr, log_file):
        return
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
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
