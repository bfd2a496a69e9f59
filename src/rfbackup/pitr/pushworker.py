"""The background pusher itself: what :mod:`rfbackup.pitr.pusher` forks for one ``pg_wal``.

It reads the configuration once and keeps ``pitr.push_threads`` threads fed with the ready
segments, oldest first: a segment goes to the first free thread, and the thread that stored
it writes its marker. Until the repository is open (boto3's import and client, the archive's
identity) one segment is packed meanwhile; after a failure no new segment is taken, the
running ones finish, then each failed segment gets its error file.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from rfbackup.pitr.pusher import ERROR, FAILED, MARKER, STATUS_DIR, STOP, write_atomic

if TYPE_CHECKING:
    from rfbackup.config import Settings
    from rfbackup.errors import RfBackupError
    from rfbackup.pitr.archive import WalArchive

IDLE_SECONDS = 1.0  # a pusher with nothing to do for this long exits
RESCAN_SECONDS = 1.0  # a pusher with a backlog lists archive_status again this often


def run(wal_dir: str, repo_url: str | None, key: str) -> int:
    """Archive ready segments until none is left for IDLE_SECONDS; 1 after a failure.

    The first segment is packed (read, hashed, compressed) while the repository is being
    opened: boto3's import and client, and the archive's identity, take a third of a second."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from pathlib import Path

    from rfbackup import interrupts
    from rfbackup.config import load
    from rfbackup.errors import RfBackupError
    from rfbackup.pitr.walcmd import open_archive, pack_options, ready_files

    status = os.path.join(wal_dir, STATUS_DIR)
    try:
        settings = load()
        packing = pack_options(settings)
        batch = Batch(settings, wal_dir, key, *packing)
    except RfBackupError as exc:
        return _cannot_start(status, exc)
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
                    name = pending.pop()  # not seen: pending holds none, and only we submit
                    if not os.path.exists(os.path.join(status, name + MARKER)):
                        batch.submit(pool, name)
            if not batch.opened.is_set():
                try:
                    archive, _ = open_archive(repo_url, True, settings, packing)
                except RfBackupError as exc:
                    batch.cancel()
                    return _cannot_start(status, exc)
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


def _cannot_start(status: str, exc: RfBackupError) -> int:
    """The answer every waiting call reads when the pusher cannot start."""
    write_atomic(os.path.join(status, FAILED), f"{exc.exit_code}\n{exc}")
    return exc.exit_code


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
        write_atomic(os.path.join(self.status, name + MARKER), self.key)

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
            write_atomic(os.path.join(self.status, name + ERROR), f"{error.exit_code}\n{error}")
        return 1 if self.errors else 0
