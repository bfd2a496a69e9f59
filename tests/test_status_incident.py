"""The incident point: the newest time every component in use can be brought back to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rfbackup.ops.status import ComponentStatus, Status, _incident_point

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def comp(name: str, point: datetime | None) -> ComponentStatus:
    return ComponentStatus(name, "ok", 1.0, recoverable_to=point)


def point(**points: datetime | None) -> Status:
    status = Status(T, "production", "s3://b")
    parts = [comp(n, points.get(n)) for n in ("postgres", "wal", "redis", "artifacts")]
    _incident_point(status, *parts)
    return status


def test_the_oldest_newest_point_limits_the_incident() -> None:
    s = point(
        postgres=T - timedelta(hours=10),
        wal=T,
        redis=T - timedelta(minutes=40),
        artifacts=T - timedelta(hours=20),
    )
    assert s.consistent_point == T - timedelta(hours=20)  # PITR reaches T; artifacts do not
    assert "limited by artifacts" in s.consistent_note


def test_pitr_replaces_the_dump_and_unused_components_do_not_count() -> None:
    s = point(postgres=T - timedelta(hours=10), wal=T - timedelta(minutes=1))
    assert s.consistent_point == T - timedelta(minutes=1)
    assert "only component" in s.consistent_note
    s = point(postgres=T - timedelta(hours=10), redis=T - timedelta(hours=1))
    assert (
        s.consistent_point == T - timedelta(hours=10) and "limited by postgres" in s.consistent_note
    )
    assert point().consistent_point is None
