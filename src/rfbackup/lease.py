"""A lease object in the repository: one writer per repository and component, on any host.

An ``flock`` only keeps runs on one host (and one user's lock folder) apart. Kubernetes runs
CronJob pods on any node, so every job that writes or deletes backups also holds
``locks/<component>.lease`` in the repository itself:

- it is created with a conditional write (S3 ``If-None-Match: *``, locally ``O_EXCL``), so
  exactly one run gets it;
- it names the holder (user, host, pid, start time) and an expiry, renewed by a heartbeat
  thread every third of ``locks.lease_seconds`` with ``If-Match`` on the version we wrote;
- it is deleted at the end. A lease left by a killed run is broken only once it expired, or
  at once when it names this host and a process that no longer exists, or by
  ``rfbackup unlock --force``. Breaking is itself a conditional write over the stale version.

``is_live`` is what "abandoned" means for the catalog: a partial write is abandoned only if
no live lease covers its component, so a second host never removes the first host's upload.

WAL pushes take no lease: each segment is written once under its own name (If-None-Match),
a duplicate with the same bytes is accepted and a different one refused, so two pushers
cannot corrupt the archive, and a lease round trip per segment would slow archiving down.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rfbackup import interrupts
from rfbackup.errors import AlreadyRunning, NotFound
from rfbackup.locks import exclusive
from rfbackup.logs import log
from rfbackup.storage import Repository

PREFIX = "locks/"
FORMAT = "rfbackup-lease/1"


def lease_key(component: str) -> str:
    return f"{PREFIX}{component}.lease"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (/proc), telling a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


@dataclass
class LeaseInfo:
    component: str
    owner: str
    host: str
    pid: int
    pid_start: str | None
    acquired_at: float
    heartbeat_at: float
    expires_at: float
    token: str
    format: str = FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LeaseInfo | None:
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT:
                return None
            return cls(**doc)
        except (ValueError, TypeError, AttributeError):
            return None

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.acquired_at))
        until = time.strftime("%H:%M:%S UTC", time.gmtime(self.expires_at))
        who = f"host {self.host}, pid {self.pid}, user {self.owner}"
        return f"{who}, since {since}, lease until {until}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "live": is_live(self)}


def is_live(info: LeaseInfo | None, now: float | None = None) -> bool:
    """Held by a run that may still be working: unexpired, and (on this host) still running."""
    if info is None:
        return False
    if info.expires_at <= (time.time() if now is None else now):
        return False
    if info.host == socket.gethostname():
        return _start_time(info.pid) == info.pid_start and info.pid_start is not None
    return True


def read(repo: Repository, component: str) -> tuple[LeaseInfo | None, str] | None:
    """The current lease and its version tag; (None, tag) when unreadable; None when absent."""
    found = repo.read_tagged(lease_key(component))
    if found is None:
        return None
    return LeaseInfo.from_json(found[0]), found[1]


def holds_live_lease(repo: Repository, component: str) -> bool:
    """For the catalog: is a write of ``component`` possibly running anywhere?"""
    current = read(repo, component)
    if current is None:
        return False
    info, _ = current
    return info is None or is_live(info)  # an unreadable lease: never assume it is dead


class Lease:
    def __init__(self, repo: Repository, component: str, what: str, seconds: int) -> None:
        self.repo, self.component, self.what, self.seconds = repo, component, what, seconds
        self.key = lease_key(component)
        now = time.time()
        self.info = LeaseInfo(
            component=component,
            owner=getpass.getuser(),
            host=socket.gethostname(),
            pid=os.getpid(),
            pid_start=_start_time(os.getpid()),
            acquired_at=now,
            heartbeat_at=now,
            expires_at=now + seconds,
            token=secrets.token_hex(16),
        )
        self.tag: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        for _ in range(3):
            self._refresh_times()
            tag = self.repo.put_conditional(self.key, self.info.to_json(), None)
            if tag is not None:
                self.tag = tag
                break
            current = read(self.repo, self.component)
            if current is None:
                continue  # released meanwhile: try again
            info, old_tag = current
            if info is None or is_live(info):
                holder = info.describe() if info else "unreadable lease"
                raise AlreadyRunning(
                    f"{self.what} is already running on {holder} "
                    f"({self.repo.describe(self.key)}; `rfbackup unlock --force` if it is dead)"
                )
            log.warning("breaking the stale lease of %s: %s", self.what, info.describe())
            tag = self.repo.put_conditional(self.key, self.info.to_json(), old_tag)
            if tag is not None:
                self.tag = tag
                break
        else:
            raise AlreadyRunning(f"{self.what}: could not take {self.repo.describe(self.key)}")
        self._thread = threading.Thread(target=self._heartbeat, daemon=True, name="lease")
        self._thread.start()

    def _refresh_times(self) -> None:
        now = time.time()
        self.info.heartbeat_at, self.info.expires_at = now, now + self.seconds

    def _heartbeat(self) -> None:
        interrupts.leave_to_main_thread()
        while not self._stop.wait(self.seconds / 3):
            self._refresh_times()
            try:
                tag = self.repo.put_conditional(self.key, self.info.to_json(), self.tag)
            except Exception as exc:  # a blip: the lease stays valid until it expires
                log.warning("could not renew the lease %s: %s", self.key, exc)
                continue
            if tag is None:
                self.lost = True
                log.error("the lease %s was taken by another run", self.repo.describe(self.key))
                return
            self.tag = tag

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost:
            return
        current = read(self.repo, self.component)
        if current is not None and current[0] is not None and current[0].token == self.info.token:
            self.repo.delete([self.key])
            _tidy(self.repo)


def _tidy(repo: Repository) -> None:
    """A local repository keeps no empty locks/ folder behind (nothing left behind)."""
    from rfbackup.storage.local import LocalRepository

    if isinstance(repo, LocalRepository):
        with contextlib.suppress(OSError):
            (repo.root / PREFIX).rmdir()


_current: ContextVar[Lease | None] = ContextVar("rfbackup_lease", default=None)


@contextmanager
def held(repo: Repository, component: str, what: str, seconds: int) -> Iterator[Lease]:
    lease = Lease(repo, component, what, seconds)
    lease.acquire()
    token = _current.set(lease)
    try:
        yield lease
    finally:
        _current.reset(token)
        lease.release()


def ensure_held() -> None:
    """Before a commit point: refuse to publish if another run took our lease meanwhile."""
    lease = _current.get()
    if lease is not None and lease.lost:
        raise AlreadyRunning(
            f"{lease.what}: another run took over {lease.repo.describe(lease.key)} while this "
            "one was working; its result is discarded"
        )


@contextmanager
def job(
    repo: Repository, component: str, what: str, lock_file: Path, seconds: int
) -> Iterator[Lease]:
    """What every backup or deletion job holds: the local flock (fast, same host) and the
    lease in the repository (every host)."""
    with exclusive(lock_file, what), held(repo, component, what, seconds) as lease:
        yield lease


def break_lease(repo: Repository, component: str, dry_run: bool) -> LeaseInfo | None:
    """``rfbackup unlock --force``: remove the lease whoever holds it; returns the holder."""
    current = read(repo, component)
    if current is None:
        raise NotFound(f"no lease {repo.describe(lease_key(component))}")
    if not dry_run:
        repo.delete([lease_key(component)])
        _tidy(repo)
        log.warning("removed the lease %s", repo.describe(lease_key(component)))
    return current[0]
