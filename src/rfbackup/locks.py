"""One run at a time per repository and component, with an advisory ``flock``.

The kernel drops an ``flock`` when its holder dies, even by ``kill -9``, so a lock left by a
killed run never blocks the next one. The lock file records who holds it, for the message.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rfbackup.errors import AlreadyRunning, StorageError


def lock_path(repository_url: str, component: str, local_root: Path | None) -> Path:
    """Local repositories keep their locks inside; remote ones in a per-host runtime folder."""
    if local_root is not None:
        return local_root / f".rfbackup-{component}.lock"
    digest = hashlib.sha256(repository_url.encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp")) / "rfbackup-locks"
    return base / f"{digest}-{component}.lock"


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot create lock {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(f"{what} is already running ({_holder(fd)})") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    """True while some process holds the lock (without taking it for long)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info["since"]))
        return f"pid {info['pid']} on {info['host']}, started {started}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
