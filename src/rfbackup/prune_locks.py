"""Retention meets Object Lock: a prune never tries to delete a locked version.

* A backup the plan would delete is kept, "locked until ...", while any version of any of its
  objects is still locked: its deletion is planned only after the last retain-until.
* A delete the server refuses anyway (AccessDenied: a lock we did not see, a race) is not a
  failure of the run: the backup is kept and the refusal reported.
* Extend on use (like kopia): a good backup the plan keeps past its keep-days (one of the
  newest ``keep_min``) gets its locks lengthened to now + 2 x margin whenever they would end
  within the margin, so the last backups of a lineage stay locked as long as they are kept.
  Run prune more often than the margin (the default weekly prune and 7-day margin fit).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from rfbackup.logs import log
from rfbackup.retention import Decision
from rfbackup.storage import Repository
from rfbackup.storage.objectlock import LockedObjects, Retention


def locked_reason(until: datetime) -> str:
    return f"locked until {until.strftime('%Y-%m-%d %H:%M:%S')} UTC (Object Lock)"


def lock_of(repo: Repository, keys: list[str], now: datetime) -> Retention | None:
    """The last lock any version of ``keys`` holds at ``now``, or None."""
    held = [r for k in keys if (r := repo.locked_until(k, now)) is not None]
    return max(held, key=lambda r: r.until, default=None)


def hold_locked(repo: Repository, decisions: list[Decision], now: datetime) -> list[Decision]:
    """Each planned deletion whose objects are still locked becomes a keep, with the date."""
    out = []
    for d in decisions:
        lock = lock_of(repo, d.entry.object_keys(), now) if d.delete else None
        if lock is not None:
            d = replace(d, delete=False, reason=locked_reason(lock.until), locked_until=lock.until)
        out.append(d)
    return out


def delete_backup(repo: Repository, d: Decision) -> Decision:
    """Delete a planned backup, manifest first; a refusal because of a lock keeps it."""
    try:
        repo.delete(reversed(d.entry.object_keys()))
    except LockedObjects as exc:
        log.warning("kept %s in %s: %s", d.entry.name, repo.url, exc)
        return replace(d, delete=False, reason=f"locked: the server refused the delete ({exc})")
    return d


def extend_kept(
    repo: Repository, decisions: list[Decision], now: datetime, dry_run: bool
) -> list[str]:
    """Lengthen the locks of kept good backups that would lapse within the margin. Returns
    the names of the backups extended (or that would be, in a dry run)."""
    policy = repo.retention_policy()
    if policy is None:
        return []
    extended = []
    for d in decisions:
        if d.delete or not d.entry.good:
            continue
        keys = d.entry.object_keys()
        if d.entry.created_at + timedelta(days=policy.days_for(d.entry.name)) > now:
            continue  # still inside its keep-days: its lock outlives it by the margin
        target = Retention(policy.mode, now + 2 * policy.margin)
        ending = [k for k in keys if _ends_before(repo, k, now + policy.margin)]
        if not ending:
            continue
        extended.append(d.entry.name)
        if dry_run:
            log.info("would extend the lock of %s to %s", d.entry.name, target.until)
            continue
        for key in ending:
            repo.extend_retention(key, target)
        log.info(
            "extended the lock of %s to %s (kept past its keep-days)", d.entry.name, target.until
        )
    return extended


def _ends_before(repo: Repository, key: str, when: datetime) -> bool:
    r = repo.object_retention(key)
    return r is None or r.until < when
