"""wal-push in the background, the way pgBackRest's asynchronous archive-push works.

PostgreSQL runs ``archive_command`` once per segment and waits for it. Each call:

1. returns 0 at once when ``pg_wal/rfbackup_status/<name>.pushed`` exists and names the same
   destination (the marker is consumed);
2. otherwise makes sure one *pusher* runs for this ``pg_wal`` (``pusher.lock``, an flock held
   for the pusher's whole life, holding the destination's hash and the pusher's pid; the call
   forks the pusher when nobody holds the lock), then waits for
   its own segment's marker (exit 0) or ``<name>.error`` (that error's message and exit code).

The pusher (:mod:`rfbackup.pitr.pushworker`) reads the configuration once, then archives the
``.ready`` segments, oldest first, on ``pitr.push_threads`` threads, until no new segment has
been ready for a second. It keeps the threads fed: a segment is handed over as soon as a
thread frees up, with no round to wait for, so starting Python and reading the configuration
no longer sit between segments.
Metrics are reported every ``pitr.push_batch`` stored segments and whenever the queue drains.

Nothing is reported done before it is stored: each segment's marker is written by the thread
that stored it, after the store returned (a local repository fsyncs file and folder; an S3
PUT has completed), and each segment gets its own marker or error. A pusher killed mid-store
leaves no marker for what it had not finished; the waiting call sees the lock free, and
starts another. After a failure the pusher takes no new segment, lets the running ones
finish, and writes the failed ones' errors.

A marker holds a hash of what decides the destination (``--repo``, ``RFBACKUP_*`` and
``AWS_*`` variables, the configuration file's path and identity, the working folder), never
the values: after ``archive_command`` or the configuration changes, old markers no longer
count, and a running pusher for the old destination is asked to stop (``pusher.stop``).

This module is on the path of every call: at import it loads only the standard library.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time

STATUS_DIR = "rfbackup_status"
MARKER = ".pushed"
ERROR = ".error"
LOCK = "pusher.lock"
STOP = "pusher.stop"
FAILED = "pusher.error"  # the pusher could not start (configuration, repository)
LOG = "pusher.log"
POLL_SECONDS = 0.005
MAX_STARTS = 3  # pushers that may die without an answer before a call gives up
LOG_LIMIT = 1024 * 1024


def destination_key(repo_url: str | None) -> str:
    """A hash of everything that decides where and how segments are stored."""
    import hashlib

    parts = [repo_url or "", os.getcwd()]
    ours = sorted(k for k in os.environ if k.startswith(("RFBACKUP_", "AWS_")))
    parts += [f"{k}={os.environ[k]}" for k in ours]
    config = os.path.abspath(os.environ.get("RFBACKUP_CONFIG", "rfbackup.toml"))
    try:
        st = os.stat(config)
        parts.append(f"{config}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
    except OSError:
        parts.append(f"{config}:absent")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def consume_marker(status: str, name: str, key: str) -> bool:
    """True if ``name`` was archived to this destination by a pusher; the marker is removed
    either way (a marker for another destination never counts)."""
    marker = os.path.join(status, name + MARKER)
    try:
        with open(marker) as fh:
            content = fh.read()
    except OSError:
        return False
    _unlink(marker)
    return content == key


def _read_error(status: str, name: str) -> tuple[int, str] | None:
    for file in (name + ERROR, FAILED):
        try:
            with open(os.path.join(status, file)) as fh:
                code, _, message = fh.read().partition("\n")
        except OSError:
            continue
        try:
            return int(code), message.strip()
        except ValueError:
            return 1, message.strip() or "the background pusher failed"
    return None


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _unlink(path: str) -> None:
    try:  # noqa: SIM105 (contextlib costs this module's callers ~5 ms of start-up)
        os.unlink(path)
    except FileNotFoundError:
        pass


def _try_lock(status: str) -> int | None:
    """The pusher lock's fd when nobody holds it, else None."""
    fd = os.open(os.path.join(status, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _running_key(status: str) -> str:
    try:
        with open(os.path.join(status, LOCK)) as fh:
            return fh.read(64)
    except OSError:
        return ""


def push_async(path: str, repo_url: str | None) -> int | None:
    """Archive ``path`` through the pusher and return the exit code, or None when the file is
    not one PostgreSQL marked ready (the caller then pushes it by itself)."""
    wal_dir, name = os.path.split(path)
    wal_dir = wal_dir or "."
    if not os.path.exists(os.path.join(wal_dir, "archive_status", name + ".ready")):
        return None
    status = os.path.join(wal_dir, STATUS_DIR)
    key = destination_key(repo_url)
    if consume_marker(status, name, key):
        return 0
    try:
        os.mkdir(status, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return _failed(f"cannot create {status}: {exc.strerror}")
    for stale in (name + ERROR, FAILED):  # answers to earlier calls
        _unlink(os.path.join(status, stale))
    starts = 0
    while True:
        if consume_marker(status, name, key):
            return 0
        error = _read_error(status, name)
        if error is not None:
            return _failed(error[1], error[0])
        fd = _try_lock(status)
        if fd is None:
            if _running_key(status) not in ("", key):  # a pusher for another destination
                write_atomic(os.path.join(status, STOP), "")
            time.sleep(POLL_SECONDS)
            continue
        try:
            if consume_marker(status, name, key):  # the last pusher finished it just now
                return 0
            error = _read_error(status, name)
            if error is not None:
                return _failed(error[1], error[0])
            if starts == MAX_STARTS:
                return _failed(
                    f"the background pusher stopped {starts} times without archiving {name} "
                    f"(see {os.path.join(status, LOG)})"
                )
            starts += 1
            _unlink(os.path.join(status, STOP))
            os.pwrite(fd, key.encode(), 0)
            _spawn(fd, wal_dir, repo_url, key)
        finally:
            os.close(fd)


def _failed(message: str, code: int = 1) -> int:
    print(f"rfbackup wal-push: error: {message}", file=sys.stderr)
    return code


def _spawn(lock_fd: int, wal_dir: str, repo_url: str | None, key: str) -> None:
    """Fork the pusher: it keeps the lock (the same open file) until it exits."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        return
    code = 1
    try:
        os.pwrite(lock_fd, f"\n{os.getpid():<10d}\n".encode(), 64)  # after the key: who pushes
        os.setsid()  # PostgreSQL's signals to the archiver's process group are not for us
        status = os.path.join(wal_dir, STATUS_DIR)
        log_path = os.path.join(status, LOG)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        if os.path.exists(log_path) and os.path.getsize(log_path) > LOG_LIMIT:
            flags |= os.O_TRUNC
        log = os.open(log_path, flags, 0o600)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)  # stdout and stderr no longer hold the caller's pipes open
        from rfbackup.pitr.pushworker import run

        code = run(os.path.abspath(wal_dir), repo_url, key)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)
