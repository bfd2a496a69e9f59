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
from rfbackup.pitr.archive import Archived, WalArchive
from rfbackup.pitr.basebackup import wal_range
from rfbackup.pitr.recover import base_backups_all
from rfbackup.pitr.walnames import Segment
from rfbackup.retention import Decision, Policy, plan


@dataclass
class PitrPlan:
    backups: list[Decision]
    wal_delete: list[Archived] = field(default_factory=list)
    wal_keep: int = 0
    wal_from: str | None = None  # the first segment kept

    @property
    def unreadable(self) -> list[str]:
        return [d.entry.name for d in self.backups if d.entry.status == UNREADABLE]

    def to_dict(self) -> dict[str, object]:
        return {
            "base_backups": [d.to_dict() for d in self.backups],
            "wal_kept_from": self.wal_from,
            "wal_deleted": [a.name for a in self.wal_delete],
            "wal_kept": self.wal_keep,
        }


def make_plan(archive: WalArchive, policy: Policy, now: datetime) -> PitrPlan:
    decisions = plan(base_backups_all(archive.repo), policy, now)
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
    return result


def apply(archive: WalArchive, pitr_plan: PitrPlan) -> None:
    """Delete what the plan says: backups (manifest first), then WAL."""
    repo = archive.repo
    for d in pitr_plan.backups:
        if d.delete:
            repo.delete(reversed(d.entry.object_keys()))
    repo.delete(a.key for a in pitr_plan.wal_delete)
