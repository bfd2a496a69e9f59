"""Retention as a pure function: ``plan(entries, policy, now)`` -> keep or delete, with reasons.

Rules, applied per component and environment:

* the newest ``keep_min`` good backups are always kept, however old: if backups stopped a
  month ago, the last good ones survive;
* other good backups are kept for ``keep_days`` and deleted after;
* damaged leftovers (missing data, bad manifest) older than ``keep_days`` are deleted;
* writes in progress and abandoned partial writes are never touched here;
* files without a manifest are kept unless ``include_unmanaged``, then aged like the rest.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from rfbackup.catalog import Entry


@dataclass(frozen=True)
class Policy:
    keep_days: int = 30
    keep_min: int = 3
    include_unmanaged: bool = False


@dataclass(frozen=True)
class Decision:
    entry: Entry
    delete: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            **self.entry.to_dict(),
            "action": "delete" if self.delete else "keep",
            "reason": self.reason,
        }


def plan(entries: list[Entry], policy: Policy, now: datetime) -> list[Decision]:
    cutoff = now - timedelta(days=policy.keep_days)
    groups: dict[tuple[str, str | None], list[Entry]] = defaultdict(list)
    for e in entries:
        groups[(e.component, e.environment)].append(e)
    decisions: list[Decision] = []
    for group in groups.values():
        newest_first = sorted(group, key=lambda e: (e.created_at, e.name), reverse=True)
        good_seen = 0
        for e in newest_first:
            decisions.append(_decide(e, policy, cutoff, good_seen))
            if e.good:
                good_seen += 1
    decisions.sort(key=lambda d: (d.entry.created_at, d.entry.name), reverse=True)
    return decisions


def _decide(e: Entry, policy: Policy, cutoff: datetime, good_seen: int) -> Decision:
    days = f"{policy.keep_days} days"
    if e.status in ("in-progress", "abandoned"):
        return Decision(e, False, "being written or abandoned by a crash; never pruned")
    if e.status == "no-manifest" and not policy.include_unmanaged:
        return Decision(e, False, "no manifest; kept (use --include-unmanaged to prune)")
    if e.good and good_seen < policy.keep_min:
        return Decision(e, False, f"one of the newest {policy.keep_min} good backups")
    if e.created_at >= cutoff:
        return Decision(e, False, f"newer than {days}")
    what = "backup" if e.good else f"{e.status} entry"
    return Decision(e, True, f"{what} older than {days}")
