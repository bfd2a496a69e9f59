"""One line about the WAL archive for `rfbackup list`: how much, from where to where, gaps."""

from __future__ import annotations

from typing import Any

from rfbackup.pitr.archive import WalArchive
from rfbackup.pitr.walnames import Segment
from rfbackup.storage import Repository

MAX_GAPS = 20  # listed; the count says how many more


def wal_summary(repo: Repository) -> dict[str, Any] | None:
    """The archive's segments per timeline: first, last, and the missing ones between
    (a gap breaks recovery through it). None when the repository has no WAL archive."""
    archive = WalArchive(repo)
    info = archive.info()
    if info is None:
        return None
    size = info.wal_segment_size
    numbers: dict[int, set[int]] = {}
    total, newest, count = 0, None, 0
    for copy in archive.all():
        seg = Segment.parse(copy.name, size)
        total += copy.size
        newest = copy.modified if newest is None or copy.modified > newest else newest
        if seg is None:  # history and backup-label files
            continue
        count += 1
        numbers.setdefault(seg.timeline, set()).add(seg.number)
    gaps: list[str] = []
    first = last = None
    for timeline in sorted(numbers):
        have = numbers[timeline]
        lo, hi = min(have), max(have)
        first = first or Segment(timeline, lo, size).name
        last = Segment(timeline, hi, size).name
        gaps += [Segment(timeline, n, size).name for n in range(lo, hi) if n not in have]
    return {
        "name": "wal/",
        "component": "wal",
        "environment": None,
        "created_at": newest,
        "size_bytes": total,
        "status": "gaps" if gaps else "ok",
        "problem": f"{len(gaps)} missing segment(s)" if gaps else None,
        "system_identifier": info.system_identifier,
        "segments": count,
        "first": first,
        "last": last,
        "gaps": gaps[:MAX_GAPS],
        "gap_count": len(gaps),
    }
