"""wal-push in the background, the way pgBackRest's asynchronous archive-push works.

PostgreSQL runs ``archive_command`` once per segment and waits for it. Each call:

1. returns 0 at once when ``pg_wal/rfbackup_status/<name>.pushed`` exists and names the same
   destination (the marker is consumed);
2. otherwise makes sure one *pusher* runs for this ``pg_wal`` (``pusher.lock``, an flock held
   for the pusher's whole life, holding the destination's hash and the pusher's pid; the call
   forks the pusher when nobody holds the lock), then waits for
   its own segment's marker (exit 0) or ``<name>.error`` (that error's message and exit code).

The pusher reads the configuration once, then archives the ``.ready`` segments, oldest first,
on ``pitr.push_threads`` threads, until no new segment has been ready for a second. It keeps
the threads fed: a segment is handed over as soon as a thread frees up, with no round to wait
for, so starting Python and reading the configuration no longer sit between segments.
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

TYPE_CHECKING = False  # typing itself costs ~10 ms on every archive_command call

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor
    from typing import Any

    from rfbackup.config import Settings
    from rfbackup.pitr.archive import WalArchive

STATUS_DIR = "rfbackup_status"
MARKER = ".pushed"
ERROR = ".error"
LOCK = "pusher.lock"
STOP = "pusher.stop"
FAILED = "pusher.error"  # the pusher could not start (configuration, repository)
LOG = "pusher.log"
IDLE_SECONDS = 1.0  # a pusher with nothing to do for this long exits
RESCAN_SECONDS = 1.0  # a pusher with a backlog lists archive_status again this often
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


def _write_atomic(path: str, text: str) -> None:
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
                _write_atomic(os.path.join(status, STOP), "")
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
        code = run(os.path.abspath(wal_dir), repo_url, key)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


# -- the pusher ---------------------------------------------------------------------------


def run(wal_dir: str, repo_url: str | None, key: str) -> int:
    """Archive ready segments until none is left for IDLE_SECONDS; 1 after a failure.

    The first segment is packed (read, hashed, compressed) while the repository is being
    opened: boto3's import and client, and the archive's identity, take a third of a second."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
    from pathlib import Path

    from rfbackup import interrupts
    from rfbackup.config import load
    from rfbackup.errors import RfBackupError
    from rfbackup.pitr.walcmd import open_archive, pack_options, ready_files

    status = os.path.join(wal_dir, STATUS_DIR)
    try:
        settings = load()
        batch = Batch(settings, wal_dir, key, *pack_options(settings))
    except RfBackupError as exc:
        _write_atomic(os.path.join(status, FAILED), f"{exc.exit_code}\n{exc}")
        return exc.exit_code
    threads = settings.pitr.push_threads
    depth = threads * 2  # queued behind the running ones: no thread waits for us
    pending: list[str] = []  # ready, oldest last
    scanned = 0.0
    idle_since = time.monotonic()
    with ThreadPoolExecutor(threads, initializer=interrupts.leave_to_main_thread) as pool:
        while True:
            stopping = batch.errors or os.path.exists(os.path.join(status, STOP))
            # until the repository is open, one segment is packed: the imports use the other core
            room = depth if batch.opened.is_set() else 1
            if not stopping and len(batch.running) < room:
                if not pending or time.monotonic() - scanned > RESCAN_SECONDS:
                    pending = [n for n in ready_files(Path(wal_dir)) if n not in batch.seen]
                    pending.reverse()
                    scanned = time.monotonic()
                while pending and len(batch.running) < room and not batch.errors:
                    name = pending.pop()
                    if name not in batch.seen and not os.path.exists(
                        os.path.join(status, name + MARKER)
                    ):
                        batch.submit(pool, name)
            if not batch.opened.is_set():
                try:
                    archive, _ = open_archive(repo_url, for_push=True, settings=settings)
                except RfBackupError as exc:
                    batch.cancel()
                    _write_atomic(os.path.join(status, FAILED), f"{exc.exit_code}\n{exc}")
                    return exc.exit_code
                batch.open(archive)
            if batch.running:
                finished, _ = wait(batch.running, timeout=0.05, return_when=FIRST_COMPLETED)
                batch.collect(finished, settings.pitr.push_batch)
                idle_since = time.monotonic()
            elif stopping or time.monotonic() - idle_since > IDLE_SECONDS:
                break
            else:
                time.sleep(0.02)
    return batch.finish()


class Cancelled(Exception):
    """A packed segment the pusher will not store (the repository did not open)."""


class Batch:
    """The pusher's segments in flight, and what has been stored or failed since the last
    metrics report. A segment is packed as soon as it is submitted, and stored once the
    archive is open; its marker is written by the thread that stored it, the moment the store
    returned, so PostgreSQL's waiting call does not wait for anything else."""

    def __init__(
        self, settings: Settings, wal_dir: str, key: str, level: int, recipients: list[Any]
    ) -> None:
        import threading

        from rfbackup.errors import RfBackupError

        self.settings = settings
        self.wal_dir = wal_dir
        self.status = os.path.join(wal_dir, STATUS_DIR)
        self.key = key
        self.level = level
        self.recipients = recipients
        self.archive: WalArchive | None = None
        self.opened = threading.Event()  # set when stores may begin (or never will)
        self.running: dict[Future[None], str] = {}
        self.seen: set[str] = set()  # submitted once: a later failure is the next pusher's
        self.first: str | None = None
        self.prepared = False
        self.started = time.time()
        self.stored: list[str] = []
        self.errors: dict[str, RfBackupError] = {}

    def open(self, archive: WalArchive) -> None:
        """Let the stores begin, after the first segment's cluster is checked against the
        archive (the first push into a new archive records its identity, once)."""
        self.archive = archive
        if self.first is not None:
            self._prepare(self.first)
        self.opened.set()

    def cancel(self) -> None:
        self.archive = None
        self.opened.set()

    def _prepare(self, name: str) -> None:
        from pathlib import Path

        from rfbackup.errors import RfBackupError

        assert self.archive is not None
        try:
            self.archive.prepare(Path(self.wal_dir, name), exclusive=True)  # we hold the lock
        except RfBackupError as exc:
            self.errors[name] = exc
            self.archive = None  # packed segments wait, then are dropped: nothing is stored
            return
        self.prepared = True

    def submit(self, pool: ThreadPoolExecutor, name: str) -> None:
        self.seen.add(name)
        self.first = self.first or name
        if self.archive is not None and not self.prepared:
            self._prepare(name)
            if not self.prepared:
                return
        self.running[pool.submit(self._push, name)] = name

    def _push(self, name: str) -> None:
        from pathlib import Path

        from rfbackup.pitr.walpack import pack

        packed = pack(Path(self.wal_dir, name), self.level, self.recipients)
        self.opened.wait()
        archive = self.archive
        if archive is None:
            raise Cancelled(name)
        archive.store(packed, True)
        _write_atomic(os.path.join(self.status, name + MARKER), self.key)

    def collect(self, finished: set[Future[None]], report_every: int) -> None:
        from rfbackup.errors import RfBackupError, StorageError

        for future in finished:
            name = self.running.pop(future)
            try:
                future.result()
                self.stored.append(name)
            except Cancelled:
                pass  # not stored, not failed: its call starts the next pusher
            except RfBackupError as exc:
                self.errors[name] = exc
            except Exception as exc:  # a bug must not pass for a stored segment
                self.errors[name] = StorageError(f"{name}: {exc!r}")
        if self.errors:
            return  # reported once, with the error, by finish()
        if len(self.stored) >= report_every or (self.stored and not self.running):
            self.report()

    def report(self) -> None:
        """Metrics for what was stored or failed since the last report."""
        from pathlib import Path

        from rfbackup.pitr.walcmd import _report

        done = self.stored or list(self.errors)
        if not done:
            return
        first_error = next(iter(self.errors.values()), None)
        _report(self.settings, self.started, Path(self.wal_dir, done[0]), self.stored, first_error)
        self.started = time.time()
        self.stored = []

    def finish(self) -> int:
        """Report, then answer each failed segment's call: 0, or 1 after a failure."""
        self.report()
        for name, error in self.errors.items():
            print(f"rfbackup wal-push: {name}: {error}", file=sys.stderr)
            _write_atomic(os.path.join(self.status, name + ERROR), f"{error.exit_code}\n{error}")
        return 1 if self.errors else 0
