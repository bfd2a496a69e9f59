"""Which WAL files a recovery needs, and which of them the archive lacks.

Recovery from a base backup on timeline T replays segments from the backup's start, on the
newest timeline descending from T (``recovery_target_timeline = 'latest'``). A timeline's
history file lists its ancestors and where each one ended; from the segment holding that
switch point on, the child timeline's copy is the one PostgreSQL reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rfbackup.pitr.archive import Archived, WalArchive
from rfbackup.pitr.walnames import Segment, is_history, parse_history


@dataclass(frozen=True)
class Lineage:
    """Timelines from the backup's to the newest, each with the segment it begins at."""

    steps: tuple[tuple[int, int], ...]  # (timeline, first segment number), ascending

    def timeline_at(self, number: int) -> int:
        timeline = self.steps[0][0]
        for tli, begins in self.steps:
            if number >= begins:
                timeline = tli
        return timeline


@dataclass
class ChainReport:
    last: Segment | None  # newest archived segment on the lineage
    lineage: Lineage
    missing: list[str] = field(default_factory=list)
    newest_archived_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return not self.missing and self.last is not None


def lineage(archive: WalArchive, files: dict[str, Archived], timeline: int, size: int) -> Lineage:
    """The newest timeline whose history descends from ``timeline``, and the path to it."""
    best: Lineage = Lineage(((timeline, 0),))
    for name in sorted((n for n in files if is_history(n)), reverse=True):
        tli = int(name[:8], 16)
        if tli <= timeline:
            continue
        switches = parse_history(archive.read(files[name]).decode())
        ancestry = [s.parent for s in switches]
        if timeline not in ancestry:
            continue
        timelines = [*ancestry, tli]
        first = ancestry.index(timeline)
        steps = [(timeline, 0)] + [
            (timelines[j + 1], switches[j].switch_lsn // size) for j in range(first, len(switches))
        ]
        best = Lineage(tuple(steps))
        break
    return best


def check(archive: WalArchive, start: Segment, until: int | None = None) -> ChainReport:
    """Every segment from ``start`` to the newest archived one (or to segment number
    ``until``) on the newest timeline descending from ``start.timeline``."""
    files = {a.name: a for a in archive.all()}
    size = start.size
    path = lineage(archive, files, start.timeline, size)
    on_path = []
    for name, entry in files.items():
        seg = Segment.parse(name, size)
        if (
            seg is not None
            and seg.number >= start.number
            and path.timeline_at(seg.number) == seg.timeline
        ):
            on_path.append((seg, entry))
    report = ChainReport(None, path)
    if on_path:
        newest_seg, newest = max(on_path, key=lambda x: x[0].number)
        report.last = newest_seg
        report.newest_archived_at = newest.modified
    end = until if until is not None else report.last.number if report.last else None
    if end is None:
        report.missing.append(start.name)
        return report
    for number in range(start.number, end + 1):
        name = Segment(path.timeline_at(number), number, size).name
        if name not in files:
            report.missing.append(name)
    return report
