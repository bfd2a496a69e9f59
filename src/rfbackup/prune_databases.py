"""Dropping the databases restores leave behind, once they are old enough.

``DB_pre_restore_YYYYMMDD_HHMMSS`` is the database a restore replaced, kept in case the
restore was the mistake. ``DB_restore_YYYYMMDD_HHMMSS`` is a restore's work database, left
only if the restore was killed before it could clean up; ``rfbackup_drill_YYYYMMDD_HHMMSS``
the scratch database of a restore drill that was killed (kill -9). Databases with open sessions are
never dropped: a work database in use belongs to a restore that is still running.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rfbackup.config import Settings
from rfbackup.logs import log
from rfbackup.sources.postgres import restore as pg

_LEFTOVER = re.compile(r"^(?P<live>.+?)_(?P<kind>pre_restore|restore)_(?P<stamp>\d{8}_\d{6})$")
# A restore drill's scratch database, left only if the drill was killed (kill -9).
_DRILL = re.compile(r"^rfbackup_drill_(?P<stamp>\d{8}_\d{6})$")


@dataclass(frozen=True)
class Leftover:
    name: str
    kind: str  # "previous" (replaced by a restore), "abandoned" (a killed restore's work),
    # or "drill" (a killed drill's scratch database)
    created_at: datetime
    sessions: int
    drop: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "database": self.name,
            "kind": self.kind,
            "sessions": self.sessions,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "action": "drop" if self.drop else "keep",
            "reason": self.reason,
        }


def plan(names_sessions: dict[str, int], keep_days: int, now: datetime) -> list[Leftover]:
    cutoff = now - timedelta(days=keep_days)
    out = []
    for name, sessions in sorted(names_sessions.items()):
        m = _LEFTOVER.match(name) or _DRILL.match(name)
        if m is None:
            continue
        created = datetime.strptime(m["stamp"], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
        groups = m.groupdict()
        kind = {"pre_restore": "previous", "restore": "abandoned"}.get(
            groups.get("kind") or "", "drill"
        )
        if sessions:
            drop, reason = False, f"{sessions} open session(s)"
        elif created >= cutoff:
            drop, reason = False, f"newer than {keep_days} days"
        else:
            drop, reason = True, f"older than {keep_days} days"
        out.append(Leftover(name, kind, created, sessions, drop, reason))
    return out


def prune_databases(
    settings: Settings, keep_days: int, dry_run: bool, now: datetime | None = None
) -> list[Leftover]:
    admin = pg.admin_connection(settings.postgres_target())
    try:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT d.datname, count(a.pid) FROM pg_database d"
                " LEFT JOIN pg_stat_activity a ON a.datname = d.datname"
                " AND a.pid <> pg_backend_pid() GROUP BY d.datname"
            )
            found = {str(name): int(n) for name, n in cur.fetchall()}
        decisions = plan(found, keep_days, now or datetime.now(UTC))
        for d in decisions:
            if d.drop and not dry_run:
                pg.drop_database(admin, d.name)
                log.info("dropped database %s (%s)", d.name, d.reason)
            elif d.drop:
                log.info("would drop database %s (%s)", d.name, d.reason)
        return decisions
    finally:
        admin.close()
