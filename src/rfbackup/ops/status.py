"""``rfbackup status``: the 3 AM question on one screen.

Per component: the last good backup and its age against the freshness threshold, the next
scheduled run, the newest point it can restore to, the replica, the last restore drill.
Everything is read from the repository listing (the catalog), never from metrics, so it
answers even when monitoring is down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from rfbackup import catalog
from rfbackup.config import Settings
from rfbackup.storage import Repository


@dataclass
class ComponentStatus:
    component: str
    state: str  # ok | stale | not set up
    threshold_hours: float | None  # None: never stale by age (config, taken on change)
    last_success: datetime | None = None
    age_seconds: float | None = None
    next_run: str | None = None  # ISO time, or "continuous"
    recoverable_to: datetime | None = None
    replica: str = "not configured"
    last_drill: str = "never"  # the newest `rfbackup drill` that checked this component
    detail: str = ""

    @property
    def stale(self) -> bool:
        return self.state == "stale"

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("last_success", "recoverable_to"):
            doc[key] = doc[key].isoformat() if doc[key] else None
        return doc


@dataclass
class Status:
    now: datetime
    environment: str
    repository: str
    components: list[ComponentStatus] = field(default_factory=list)
    consistent_point: datetime | None = None
    consistent_note: str = ""

    @property
    def ok(self) -> bool:
        return not any(c.stale for c in self.components)

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "environment": self.environment,
            "repository": self.repository,
            "ok": self.ok,
            "components": [c.to_dict() for c in self.components],
            "incident_point": self.consistent_point.isoformat() if self.consistent_point else None,
            "incident_note": self.consistent_note,
        }


def next_run(schedule: str, now: datetime) -> str:
    nxt: datetime = croniter(schedule, now.astimezone(UTC)).get_next(datetime)
    return nxt.isoformat()


def _judge(c: ComponentStatus, when: datetime | None, now: datetime) -> None:
    c.last_success = when
    if when is None:
        c.state = "stale"
        c.detail = "no good backup"
        return
    c.age_seconds = max((now - when).total_seconds(), 0.0)
    limit = c.threshold_hours
    c.state = "stale" if limit is not None and c.age_seconds > limit * 3600 else "ok"


def _replica_state(settings: Settings, primary_keys: list[str]) -> str:
    """Missing objects on the replica, by one listing of it (no reads)."""
    replica: Repository | None = settings.open_replica()
    if replica is None:
        return "not configured"
    try:
        present = {o.key for o in replica.list()}
    except Exception as exc:  # a status screen reports, it does not stop
        return f"unreadable ({exc})"
    missing = sum(k not in present for k in primary_keys)
    return "in sync" if missing == 0 else f"{missing} object(s) missing"


def collect(settings: Settings, now: datetime) -> Status:
    from rfbackup.pitr.archive import WalArchive
    from rfbackup.pitr.recover import base_backups, stop_time

    repo: Repository = settings.open_repository()
    env = settings.env.value
    fresh = settings.freshness
    status = Status(now, env, repo.url)

    entries = [e for e in catalog.scan(repo) if e.good and e.environment in (None, env)]
    dumps = [e for e in entries if e.component == "postgres"]
    pg = ComponentStatus("postgres", "ok", fresh.postgres_hours)
    _judge(pg, dumps[0].created_at if dumps else None, now)
    pg.next_run = next_run(settings.schedule.postgres, now)
    pg.recoverable_to = pg.last_success
    pg.replica = _replica_state(settings, [k for e in dumps for k in e.object_keys()])
    status.components.append(pg)

    bases = base_backups(repo)
    archived = list(WalArchive(repo).all())
    base = ComponentStatus("postgres-base", "not set up", fresh.postgres_base_hours)
    wal = ComponentStatus("wal", "not set up", fresh.wal_hours)
    if bases or archived:
        _judge(base, stop_time(bases[0]) if bases else None, now)
        base.next_run = next_run(settings.schedule.postgres_base, now)
        base.recoverable_to = base.last_success
        newest = max((a.modified for a in archived), default=None)
        _judge(wal, newest, now)
        wal.next_run = "continuous (archive_command)"
        # PITR reaches the last archived WAL, but only from a base backup older than it
        wal.recoverable_to = newest if bases else None
        if not bases:
            wal.detail = "no base backup: the WAL cannot be replayed"
    else:
        base.detail = wal.detail = "point-in-time recovery is not set up (rfbackup pitr setup)"
    status.components += [base, wal]

    try:
        from rfbackup.drill.reports import latest_by_component

        drills = latest_by_component(repo)
    except Exception:  # a status screen reports, it does not stop
        drills = {}
    for c, name in ((pg, "postgres"), (base, "pitr"), (wal, "pitr")):
        c.last_drill = drills.get(name, "never")

    snapshots = [e for e in entries if e.component == "redis"]
    rd = ComponentStatus("redis", "not set up", fresh.redis_hours)
    if snapshots:  # no snapshot at all: Redis may not be in use here, not a stale backup
        _judge(rd, snapshots[0].created_at, now)
        rd.next_run = next_run(settings.schedule.redis, now)
        rd.recoverable_to = rd.last_success
        rd.replica = _replica_state(settings, [k for e in snapshots for k in e.object_keys()])
    else:
        rd.detail = "no Redis snapshot yet (rfbackup backup redis)"
    status.components.append(rd)

    art = ComponentStatus("artifacts", "not set up", fresh.artifacts_hours)
    from rfbackup.sources.artifacts.store import SNAPSHOTS  # written last, like a manifest

    newest_snapshot = max((o.modified for o in repo.list(SNAPSHOTS)), default=None)
    if newest_snapshot is not None:  # written last: the time of the newest whole snapshot
        _judge(art, newest_snapshot, now)
        art.next_run = next_run(settings.schedule.artifacts, now)
        art.recoverable_to = art.last_success
        art.detail = "from the bucket listing (snapshots are encrypted)"
    else:
        art.detail = "no artifact snapshot yet (rfbackup backup artifacts)"
    status.components.append(art)

    bundles = [e for e in entries if e.component == "config"]
    cfg = ComponentStatus("config", "not set up", None)
    if bundles:  # taken on change: never stale by age
        cfg.state, cfg.last_success = "ok", bundles[0].created_at
        cfg.age_seconds = max((now - cfg.last_success).total_seconds(), 0.0)
        cfg.recoverable_to = cfg.last_success
        cfg.next_run = "on change"
    status.components.append(cfg)
    _incident_point(status, pg, wal, rd, art)
    return status


def _incident_point(status: Status, *parts: ComponentStatus) -> None:
    """The newest time every component in use can be brought back to: the oldest of their
    newest restorable points. PostgreSQL counts once (PITR if set up, else its dump)."""
    pg, wal, *others = parts
    postgres = wal.recoverable_to or pg.recoverable_to
    points = {"postgres": postgres} | {c.component: c.recoverable_to for c in others}
    in_use = {k: v for k, v in points.items() if v is not None}
    if not in_use:
        status.consistent_note = "no component has a restorable point"
        return
    status.consistent_point = min(in_use.values())
    laggard = min(in_use, key=lambda k: in_use[k])
    status.consistent_note = f"{', '.join(sorted(in_use))}; limited by {laggard}" + (
        "" if len(in_use) > 1 else " (the only component with backups)"
    )


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    delta = timedelta(seconds=int(seconds))
    if delta.days:
        return f"{delta.days}d{delta.seconds // 3600}h"
    hours, rest = divmod(delta.seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m"
