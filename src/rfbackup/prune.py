"""Applying the retention plan to every repository: the primary and, if any, the replica."""

from __future__ import annotations

from datetime import UTC, datetime

from rfbackup import catalog
from rfbackup.config import Settings
from rfbackup.engine import registry
from rfbackup.engine.locks import component_job, repository_lock
from rfbackup.engine.registry import Keep
from rfbackup.errors import ConfigError, StorageError
from rfbackup.locks import is_locked
from rfbackup.logs import log
from rfbackup.prune_locks import delete_backup, extend_kept, hold_locked
from rfbackup.retention import Decision, Policy, plan
from rfbackup.sources.postgres.logical import COMPONENT
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
    components: list[str] | None = None,
) -> list[tuple[str, Decision]]:
    """Each component under its own retention policy (``keep_days``/``keep_min`` override
    it), in its own lock and lease: a backup of a component and its pruning exclude each
    other. ``components`` None means every component that has a policy."""
    policies = registry.retention(settings)
    chosen = components or list(policies)
    unknown = [c for c in chosen if c not in policies]
    if unknown:
        raise ConfigError(
            f"no retention policy for {', '.join(unknown)}: components with one are "
            + ", ".join(policies)
        )
    done: list[tuple[str, Decision]] = []
    repo = settings.open_repository()
    for component in chosen:
        keep = policies[component]
        policy = Keep(
            keep.days if keep_days is None else keep_days,
            keep.min if keep_min is None else keep_min,
        )
        args = (settings, component, policy, dry_run, include_unmanaged, delete_damaged, now)
        if dry_run:
            done += _prune(*args)
            continue
        with component_job(repo, component, settings.locks):
            done += _prune(*args)
    return done


def _prune(
    settings: Settings,
    component: str,
    keep: Keep,
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
        lock_file = repository_lock(repo, component, settings.locks)[1]
        policy = Policy(
            keep_days=keep.days,
            keep_min=keep.min,
            # While a backup runs, its data file may briefly exist before its manifest:
            # leave unmanaged files alone then.
            # (A real run holds that lock itself, so no backup can be running.)
            include_unmanaged=include_unmanaged and (not dry_run or not is_locked(lock_file)),
            delete_damaged=delete_damaged,
        )
        when = now or datetime.now(UTC)
        entries = [e for e in catalog.scan(repo, lock_file) if _belongs(e, component)]
        planned = plan(entries, policy, when)
        extend_kept(repo, planned, when, dry_run)  # what the plan keeps stays locked
        for d in hold_locked(repo, planned, when):
            if d.entry.status in catalog.DAMAGED and not d.delete:
                log.warning(
                    "kept %s from %s (%s): %s; `rfbackup prune --delete-damaged` removes it",
                    d.entry.name,
                    repo.url,
                    d.entry.status,
                    d.entry.problem,
                )
            if d.locked_until is not None:
                log.info("kept %s in %s: %s", d.entry.name, repo.url, d.reason)
            if d.delete and dry_run:
                log.info("would delete %s from %s: %s", d.entry.name, repo.url, d.reason)
            elif d.delete:
                # Manifest first: once it is gone the backup no longer counts, whatever happens.
                d = delete_backup(repo, d)
                if d.delete:
                    log.info("deleted %s from %s: %s", d.entry.name, repo.url, d.reason)
            done.append((repo.url, d))
    return done


def _belongs(entry: catalog.Entry, component: str) -> bool:
    """Files we cannot attribute (no manifest, foreign names) are PostgreSQL's, as they
    were before other components existed: only ``--include-unmanaged`` deletes them."""
    if entry.component == "unknown":
        return component == COMPONENT
    return entry.component == component


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
