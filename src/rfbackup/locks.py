"""One run at a time per repository and component, on this host, with an advisory ``flock``.

The kernel drops an ``flock`` when its holder dies, even by ``kill -9``, so a lock left by a
killed run never blocks the next one. The lock file records who holds it, for the message.
Across hosts (and users), the lease object in the repository does the same job (lease.py).

Lock files live in a private folder (config ``locks.dir``: /run/rfbackup for root, else the
user's state folder), never in a shared one such as /tmp: the folder must be owned by the
user and not writable by group or others, files are opened without following symlinks,
created 0600, and never truncated (the holder line is rewritten in place, padded).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rfbackup.errors import AlreadyRunning, ConfigError, StorageError

HOLDER_BYTES = 512


def lock_path(repository_url: str, component: str, directory: Path) -> Path:
    """The lock file for one repository and component (local folders by absolute path)."""
    if "://" not in repository_url:
        repository_url = str(Path(repository_url).resolve())
    digest = hashlib.sha256(repository_url.encode()).hexdigest()[:16]
    return directory / f"{digest}-{component}.lock"


def private_dir(directory: Path) -> None:
    """Create ``directory`` 0700, or refuse one that someone else could plant files in."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(directory)
    except OSError as exc:
        raise StorageError(f"cannot create lock folder {directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"lock folder {directory} is not a directory (a symlink?)")
    if st.st_uid != os.geteuid():
        raise ConfigError(
            f"lock folder {directory} belongs to uid {st.st_uid}, not to this user "
            f"(uid {os.geteuid()}); set RFBACKUP_LOCKS__DIR to a private folder"
        )
    if st.st_mode & 0o022:
        raise ConfigError(
            f"lock folder {directory} is writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}): chmod 700 it"
        )


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot open lock {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise StorageError(f"lock {path} is not a regular file of this user; refusing it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(f"{what} is already running ({_holder(fd)})") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.pwrite(fd, json.dumps(holder).encode()[:HOLDER_BYTES].ljust(HOLDER_BYTES), 0)
        try:
            yield
        finally:
            os.pwrite(fd, b" " * HOLDER_BYTES, 0)
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    """True while some process holds the lock (without taking it for long)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, PermissionError):
        return False
    except OSError:  # ELOOP: a symlink planted at the lock path is nobody's lock
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
        info = json.loads(os.pread(fd, HOLDER_BYTES, 0).strip() or b"{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info["since"]))
        return f"pid {info['pid']} on {info['host']}, started {started}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
