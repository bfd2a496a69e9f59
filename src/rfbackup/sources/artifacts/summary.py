"""One line about the artifact snapshots for `rfbackup list`, from the listing alone.

Snapshots are age-encrypted (their times and paths need the identity: `rfbackup artifacts
list`); this summary needs none: how many snapshot objects, the newest one's time, and what
``artifacts/`` takes in the repository. Same field names as the WAL line (pitr/summary.py).
"""

from __future__ import annotations

from typing import Any

from rfbackup.sources.artifacts import COMPONENT, PREFIX
from rfbackup.sources.artifacts.store import SNAPSHOTS
from rfbackup.storage import Repository


def artifacts_summary(repo: Repository) -> dict[str, Any] | None:
    """None when the repository has no ``artifacts/`` objects at all."""
    total, found, count, newest = 0, False, 0, None
    for obj in repo.list(PREFIX):
        found = True
        total += obj.size
        if obj.key.startswith(SNAPSHOTS):
            count += 1
            newest = obj.modified if newest is None or obj.modified > newest else newest
    if not found:
        return None
    return {
        "name": PREFIX,
        "component": COMPONENT,
        "environment": None,
        "created_at": newest,
        "size_bytes": total,
        "status": "ok",
        "problem": None,
        "snapshots": count,
    }


def artifacts_line(summary: dict[str, Any]) -> str:
    from rfbackup.progress import human_bytes

    if not summary["snapshots"]:
        return f"Artifact snapshots: none ({human_bytes(summary['size_bytes'])} stored)"
    newest = summary["created_at"].strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"Artifact snapshots: {summary['snapshots']}, newest {newest} UTC, "
        f"{human_bytes(summary['size_bytes'])} stored (`rfbackup artifacts list` for details)"
    )
