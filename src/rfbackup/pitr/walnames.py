"""WAL file names and LSN arithmetic, as PostgreSQL defines them. No imports beyond the stdlib.

A segment name is ``TTTTTTTTXXXXXXXXYYYYYYYY``: timeline, then the segment number split into
"log" and "seg" halves (``XXXXXXXX * segments_per_log + YYYYYYYY``). Other files the archiver
hands us: ``TTTTTTTT.history`` (a timeline's history), ``<segment>.XXXXXXXX.backup`` (a backup
history file) and ``<segment>.partial`` (the last, incomplete segment of an old timeline).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
LOG_SPAN = 0x1_0000_0000  # bytes of WAL per "log" (the XXXXXXXX half)

SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
HISTORY_RE = re.compile(r"^([0-9A-F]{8})\.history$")
OTHER_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.(partial|[0-9A-F]{8}\.backup)$")
LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(text: str) -> int:
    m = LSN_RE.match(text.strip())
    if not m:
        raise ValueError(f"not an LSN: {text!r} (expected e.g. 0/3000060)")
    return (int(m.group(1), 16) << 32) | int(m.group(2), 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass(frozen=True, order=True)
class Segment:
    timeline: int
    number: int  # absolute segment number: LSN // segment size
    size: int = DEFAULT_SEGMENT_SIZE

    @property
    def name(self) -> str:
        per_log = LOG_SPAN // self.size
        return f"{self.timeline:08X}{self.number // per_log:08X}{self.number % per_log:08X}"

    @property
    def start_lsn(self) -> int:
        return self.number * self.size

    def next(self) -> Segment:
        return Segment(self.timeline, self.number + 1, self.size)

    @classmethod
    def of_lsn(cls, timeline: int, lsn: int, size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
        return cls(timeline, lsn // size, size)

    @classmethod
    def parse(cls, name: str, size: int = DEFAULT_SEGMENT_SIZE) -> Segment | None:
        m = SEGMENT_RE.match(name)
        if not m:
            return None
        per_log = LOG_SPAN // size
        return cls(int(m.group(1), 16), int(m.group(2), 16) * per_log + int(m.group(3), 16), size)


def is_history(name: str) -> bool:
    return HISTORY_RE.match(name) is not None


def is_wal_file(name: str) -> bool:
    """Anything PostgreSQL may archive: segments, history, backup history, partial segments."""
    return bool(SEGMENT_RE.match(name) or HISTORY_RE.match(name) or OTHER_RE.match(name))


def folder_of(name: str) -> str:
    """The archive folder a file goes in: ``history`` or the first 16 characters of a segment
    name (timeline + log), like pgBackRest, so one listing never holds more than 256 names."""
    return "history" if is_history(name) else name[:16]


def end_segment(timeline: int, end_lsn: int, size: int) -> Segment:
    """The segment holding the last byte before ``end_lsn`` (an exclusive end position)."""
    return Segment.of_lsn(timeline, max(end_lsn - 1, 0), size)


@dataclass(frozen=True)
class TimelineSwitch:
    parent: int  # the timeline that ended
    switch_lsn: int  # where the child timeline begins
    reason: str


def parse_history(text: str) -> list[TimelineSwitch]:
    """The lines of a ``.history`` file: ``parentTLI<TAB>switchpoint<TAB>reason``."""
    switches = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise ValueError(f"malformed timeline history line: {line!r}")
        reason = parts[2] if len(parts) > 2 else ""
        switches.append(TimelineSwitch(int(parts[0]), parse_lsn(parts[1]), reason))
    return switches
