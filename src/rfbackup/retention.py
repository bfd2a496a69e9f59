"""Retention as a pure function: ``plan(entries, policy, now)`` -> keep or delete, with reasons.

Never delete on doubt. Rules:

* backups are grouped by lineage (environment, component and what was backed up: the
  database, see :mod:`rfbackup.lineage`); in each lineage the newest ``keep_min`` good
  backups are always kept, however old, so one database's backups never push out another's;
* other good backups are kept for ``keep_days`` and deleted after;
* ``unreadable`` entries (the manifest could not be read: permissions, I/O, S3 403/503) are
  never deleted, and do not count toward ``keep_min``. Either the entry is good, and it is
  kept; or it is not, and the verified good ones keep_min protects are kept as well. So an
  unreadable newest backup can never make an older good one deletable;
* entries read and proven invalid (``bad-manifest``, ``damaged``) are kept and reported;
  with ``delete_damaged`` they are deleted once older than ``keep_days``;
* a manifest whose data is gone (``missing-data``) is deleted after ``keep_days``;
* writes in progress and abandoned partial writes are never touched here;
* files without a manifest are kept unless ``include_unmanaged``, and even then only files
  named like backups (``backup_*``, ``postgres/STAMP...``) are aged like the rest.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from rfbackup.catalog import DAMAGED, UNREADABLE, Entry
from rfbackup.lineage import Lineage
from rfbackup.naming import BackupName


@dataclass(frozen=True)
class Policy:
    keep_days: int = 30
    keep_min: int = 3
    include_unmanaged: bool = False
    delete_damaged: bool = False


@dataclass(frozen=True)
class Decision:
    entry: Entry
    delete: bool
    reason: str
    locked_until: datetime | None = None  # S3 Object Lock still holds one of its objects

    def to_dict(self) -> dict[str, object]:
        return {
            **self.entry.to_dict(),
            "action": "delete" if self.delete else "keep",
            "reason": self.reason,
            "locked_until": _utc(self.locked_until),
        }


def _utc(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def plan(entries: list[Entry], policy: Policy, now: datetime) -> list[Decision]:
    cutoff = now - timedelta(days=policy.keep_days)
    newest_first = sorted(entries, key=lambda e: (e.created_at, e.name), reverse=True)
    good_seen: dict[Lineage, int] = defaultdict(int)
    decisions: list[Decision] = []
    for e in newest_first:
        decisions.append(_decide(e, policy, cutoff, good_seen[e.lineage]))
        if e.good:
            good_seen[e.lineage] += 1
    return decisions


def _decide(e: Entry, policy: Policy, cutoff: datetime, good_seen: int) -> Decision:
    days = f"{policy.keep_days} days"
    if e.status in ("in-progress", "abandoned"):
        return Decision(e, False, "being written or abandoned by a crash; never pruned")
    if e.status == UNREADABLE:
        return Decision(e, False, "manifest could not be read; never deleted on doubt")
    if e.status == "no-manifest":
        if not policy.include_unmanaged:
            return Decision(e, False, "no manifest; kept (use --include-unmanaged to prune)")
        if BackupName.parse(e.name) is None:
            return Decision(e, False, "not named like a backup; never pruned")
    if e.status in DAMAGED and not policy.delete_damaged:
        return Decision(e, False, f"{e.status}; kept (use --delete-damaged to prune)")
    if e.good and good_seen < policy.keep_min:
        return Decision(e, False, f"one of the newest {policy.keep_min} good backups")
    if e.created_at >= cutoff:
        return Decision(e, False, f"newer than {days}")
    what = "backup" if e.good else f"{e.status} entry"
    return Decision(e, True, f"{what} older than {days}")
