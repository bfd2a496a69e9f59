"""Applying the retention plan to a repository."""

from __future__ import annotations

from datetime import UTC, datetime

from rfbackup import catalog
from rfbackup.backup import repository_lock
from rfbackup.config import Settings
from rfbackup.locks import is_locked
from rfbackup.logs import log
from rfbackup.naming import MANIFEST_SUFFIX, BackupName
from rfbackup.retention import Decision, Policy, plan


def prune(
    settings: Settings,
    *,
    keep_days: int | None,
    keep_min: int | None,
    dry_run: bool,
    include_unmanaged: bool,
    now: datetime | None = None,
) -> list[Decision]:
    repo = settings.open_repository()
    lock_file = repository_lock(repo)[1]
    policy = Policy(
        keep_days=settings.postgres.keep_days if keep_days is None else keep_days,
        keep_min=settings.postgres.keep_min if keep_min is None else keep_min,
        # While a backup runs, its data file may briefly exist before its manifest: leave
        # unmanaged files alone then.
        include_unmanaged=include_unmanaged and not is_locked(lock_file),
    )
    decisions = plan(catalog.scan(repo, lock_file), policy, now or datetime.now(UTC))
    for d in decisions:
        if not d.delete:
            continue
        keys = _keys_of(d)
        if dry_run:
            log.info("would delete %s: %s", d.entry.name, d.reason)
            continue
        # Manifest first: once it is gone the backup no longer counts, whatever happens next.
        repo.delete(keys)
        log.info("deleted %s: %s", d.entry.name, d.reason)
    return decisions


def _keys_of(d: Decision) -> list[str]:
    name = d.entry.name
    keys = [name + MANIFEST_SUFFIX]
    m = d.entry.manifest
    if m is not None and m.roles.get("key"):
        keys.append(str(m.roles["key"]))
    elif (parsed := BackupName.parse(name)) is not None:
        keys.append(parsed.roles_key)
    keys.append(name)
    return keys
