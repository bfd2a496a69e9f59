"""Applying the retention plan to every repository: the primary and, if any, the replica."""

from __future__ import annotations

from datetime import UTC, datetime

from rfbackup import catalog
from rfbackup.backup import COMPONENT, repository_lock
from rfbackup.config import Settings
from rfbackup.errors import StorageError
from rfbackup.lease import job
from rfbackup.locks import is_locked
from rfbackup.logs import log
from rfbackup.retention import Decision, Policy, plan
from rfbackup.storage import Repository


def prune(
    settings: Settings,
    *,
    keep_days: int | None,
    keep_min: int | None,
    dry_run: bool,
    include_unmanaged: bool,
    delete_damaged: bool = False,
    now: datetime | None = None,
) -> list[tuple[str, Decision]]:
    """Deleting takes the same lock and lease as a backup: they exclude each other."""
    args = (settings, keep_days, keep_min, dry_run, include_unmanaged, delete_damaged, now)
    if dry_run:
        return _prune(*args)
    repo = settings.open_repository()
    what, path = repository_lock(repo, COMPONENT, settings.locks)
    with job(repo, COMPONENT, what, path, settings.locks.lease_seconds):
        return _prune(*args)


def _prune(
    settings: Settings,
    keep_days: int | None,
    keep_min: int | None,
    dry_run: bool,
    include_unmanaged: bool,
    delete_damaged: bool,
    now: datetime | None,
) -> list[tuple[str, Decision]]:
    """Each repository is planned from its own listing, with the same rules.

    Call :func:`check_doubts` on the result: entries that could not be read were kept, and
    the run must not look like a success."""
    repos: list[Repository] = [settings.open_repository()]
    replica = settings.open_replica()
    if replica is not None:
        repos.append(replica)
    done: list[tuple[str, Decision]] = []
    for repo in repos:
        lock_file = repository_lock(repo, locks=settings.locks)[1]
        policy = Policy(
            keep_days=settings.postgres.keep_days if keep_days is None else keep_days,
            keep_min=settings.postgres.keep_min if keep_min is None else keep_min,
            # While a backup runs, its data file may briefly exist before its manifest:
            # leave unmanaged files alone then.
            # (A real run holds that lock itself, so no backup can be running.)
            include_unmanaged=include_unmanaged and (not dry_run or not is_locked(lock_file)),
            delete_damaged=delete_damaged,
        )
        for d in plan(catalog.scan(repo, lock_file), policy, now or datetime.now(UTC)):
            done.append((repo.url, d))
            if d.entry.status in catalog.DAMAGED and not d.delete:
                log.warning(
                    "kept %s from %s (%s): %s; `rfbackup prune --delete-damaged` removes it",
                    d.entry.name,
                    repo.url,
                    d.entry.status,
                    d.entry.problem,
                )
            if not d.delete:
                continue
            if dry_run:
                log.info("would delete %s from %s: %s", d.entry.name, repo.url, d.reason)
                continue
            # Manifest first: once it is gone the backup no longer counts, whatever happens.
            repo.delete(reversed(d.entry.object_keys()))
            log.info("deleted %s from %s: %s", d.entry.name, repo.url, d.reason)
    return done


def check_doubts(done: list[tuple[str, Decision]]) -> None:
    """A StorageError naming every entry that was kept because it could not be read."""
    unread = [(url, d.entry) for url, d in done if d.entry.status == catalog.UNREADABLE]
    if not unread:
        return
    names = ", ".join(f"{url.rstrip('/')}/{e.name}" for url, e in unread)
    raise StorageError(
        f"{len(unread)} backup(s) could not be read and were kept (never deleted on doubt): "
        f"{names}; first error: {unread[0][1].problem}"
    )
