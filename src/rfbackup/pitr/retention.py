"""Retention for base backups and WAL.

Base backups follow the same keep-days / keep-min rules as logical backups (the same pure
``plan``). WAL is then cut at the start of the oldest base backup that is kept: every WAL
file from a segment before it goes, everything from it on stays, so each kept backup can
still be recovered to any point after it. Timeline history files are always kept (they are
tiny and recovery reads them to choose a timeline). Without any good base backup, no WAL is
deleted.

Never on doubt: a base backup whose manifest could not be read is kept, and since the WAL
it needs is unknown, no WAL is deleted at all in that run; the command then fails naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rfbackup.catalog import UNREADABLE
from rfbackup.logs import log
from rfbackup.pitr.archive import Archived, WalArchive
from rfbackup.pitr.basebackup import wal_range
from rfbackup.pitr.recover import base_backups_all
from rfbackup.pitr.walnames import Segment
from rfbackup.prune_locks import delete_backup, hold_locked
from rfbackup.retention import Decision, Policy, plan
from rfbackup.storage.objectlock import LockedObjects


@dataclass
class PitrPlan:
    backups: list[Decision]
    wal_delete: list[Archived] = field(default_factory=list)
    wal_keep: int = 0
    wal_from: str | None = None  # the first segment kept
    wal_locked: int = 0  # older WAL kept because Object Lock still holds it
    wal_locked_until: datetime | None = None

    @property
    def unreadable(self) -> list[str]:
        return [d.entry.name for d in self.backups if d.entry.status == UNREADABLE]

    def to_dict(self) -> dict[str, object]:
        return {
            "base_backups": [d.to_dict() for d in self.backups],
            "wal_kept_from": self.wal_from,
            "wal_deleted": [a.name for a in self.wal_delete],
            "wal_kept": self.wal_keep,
            "wal_locked": self.wal_locked,
            "wal_locked_until": self.wal_locked_until,
        }


def make_plan(archive: WalArchive, policy: Policy, now: datetime) -> PitrPlan:
    # A base backup still locked is kept, and so is the WAL it needs.
    decisions = hold_locked(archive.repo, plan(base_backups_all(archive.repo), policy, now), now)
    kept = [
        d.entry
        for d in decisions
        if not d.delete and d.entry.good and d.entry.manifest and d.entry.manifest.physical
    ]
    result = PitrPlan(decisions)
    files = list(archive.all())
    if not kept or result.unreadable:
        result.wal_keep = len(files)
        return result
    oldest = min(kept, key=lambda e: e.created_at)
    assert oldest.manifest is not None
    first, _ = wal_range(oldest.manifest)
    result.wal_from = first.name
    for entry in files:
        seg = Segment.parse(entry.name[:24], first.size)  # history files parse as None
        if seg is not None and seg.number < first.number:
            result.wal_delete.append(entry)
        else:
            result.wal_keep += 1
    _hold_locked_wal(archive, result, now)
    return result


def _hold_locked_wal(archive: WalArchive, result: PitrPlan, now: datetime) -> None:
    """WAL before the cut that Object Lock still holds stays (counted, with the last date)."""
    free = []
    for entry in result.wal_delete:
        lock = archive.repo.locked_until(entry.key, now)
        if lock is None:
            free.append(entry)
            continue
        result.wal_locked += 1
        result.wal_keep += 1
        if result.wal_locked_until is None or lock.until > result.wal_locked_until:
            result.wal_locked_until = lock.until
    result.wal_delete = free


def apply(archive: WalArchive, pitr_plan: PitrPlan) -> None:
    """Delete what the plan says: backups (manifest first), then WAL."""
    repo = archive.repo
    pitr_plan.backups = [delete_backup(repo, d) if d.delete else d for d in pitr_plan.backups]
    try:
        repo.delete(a.key for a in pitr_plan.wal_delete)
    except LockedObjects as exc:  # a lock we did not see: kept, reported, not a failure
        log.warning("%s", exc)
        gone = set(exc.keys)
        pitr_plan.wal_locked += len(gone)
        pitr_plan.wal_delete = [a for a in pitr_plan.wal_delete if a.key not in gone]
