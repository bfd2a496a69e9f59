"""The live server's archiver, as the server sees it: ``pg_stat_archiver`` and the ``.ready``
backlog in ``pg_wal/archive_status``. Used by ``pitr setup --check`` and ``wal-verify --live``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rfbackup.config import Settings
from rfbackup.errors import IntegrityError, SourceError

STATUS_SQL = """
SELECT current_setting('archive_mode'), current_setting('archive_command'),
       archived_count, last_archived_wal, last_archived_time,
       failed_count, last_failed_wal, last_failed_time,
       current_setting('server_version_num')::int
FROM pg_stat_archiver
"""
READY_SQL_15 = "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
READY_SQL = "SELECT count(*) FROM pg_ls_dir('pg_wal/archive_status') AS f WHERE f LIKE '%.ready'"


@dataclass
class ArchiverStatus:
    archive_mode: str
    archive_command: str
    archived_count: int
    last_archived_wal: str | None
    last_archived_time: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_time: datetime | None
    ready: int  # segments waiting to be archived

    @property
    def failing(self) -> bool:
        """The newest attempt failed (a failure after the last success)."""
        if self.last_failed_time is None:
            return False
        return self.last_archived_time is None or self.last_failed_time > self.last_archived_time

    def to_dict(self) -> dict[str, Any]:
        from rfbackup.timefmt import rfc3339

        return {
            "archive_mode": self.archive_mode,
            "archived_count": self.archived_count,
            "last_archived_wal": self.last_archived_wal,
            "last_archived_time": rfc3339(self.last_archived_time),
            "failed_count": self.failed_count,
            "last_failed_wal": self.last_failed_wal,
            "last_failed_time": rfc3339(self.last_failed_time),
            "ready": self.ready,
            "failing": self.failing,
        }

    def problem(self) -> str | None:
        """Why archiving is not working, in one line, or None."""
        from rfbackup.timefmt import rfc3339

        if self.archive_mode == "off":
            return "archive_mode is off on the server: run `rfbackup pitr setup`, then restart"
        if self.failing:
            return (
                f"the archiver is failing: {self.failed_count} failure(s), last on "
                f"{self.last_failed_wal} at {rfc3339(self.last_failed_time)}; {self.ready} "
                "segment(s) "
                "waiting in pg_wal (see the server log for the archive_command error)"
            )
        return None


def read(settings: Settings) -> ArchiverStatus:
    from rfbackup.sources.postgres.dump import connect

    with connect(settings.postgres_target(), autocommit=True) as conn:
        row = conn.execute(STATUS_SQL).fetchone()
        assert row is not None
        version = int(row[8])
        try:
            ready_row = conn.execute(READY_SQL_15 if version >= 150000 else READY_SQL).fetchone()
        except Exception as exc:  # psycopg's errors: no privilege to list pg_wal
            raise SourceError(
                f"cannot count the .ready backlog: {str(exc).strip().splitlines()[0]} "
                "(connect as a superuser or a member of pg_monitor)"
            ) from None
    return ArchiverStatus(
        archive_mode=str(row[0]),
        archive_command=str(row[1]),
        archived_count=int(row[2]),
        last_archived_wal=row[3],
        last_archived_time=row[4],
        failed_count=int(row[5]),
        last_failed_wal=row[6],
        last_failed_time=row[7],
        ready=int(ready_row[0]) if ready_row else 0,
    )


def confirm(settings: Settings, wait_seconds: float) -> tuple[ArchiverStatus, str]:
    """Close the current WAL segment on the live server and wait until the archiver has
    stored it, then find it in the repository. Returns the status and the segment's name;
    raises IntegrityError when archiving is off, failing, or too slow."""
    import time

    from rfbackup.pitr.archive import WalArchive
    from rfbackup.sources.postgres.dump import connect

    status = read(settings)
    if status.archive_mode == "off":
        raise IntegrityError(str(status.problem()))
    with connect(settings.postgres_target(), autocommit=True) as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    assert row is not None
    segment = str(row[0])
    deadline = time.monotonic() + wait_seconds
    while True:
        status = read(settings)
        if status.last_archived_wal is not None and status.last_archived_wal[:24] >= segment:
            break
        if status.failing and status.last_failed_wal == segment:
            raise IntegrityError(str(status.problem()))
        if time.monotonic() > deadline:
            raise IntegrityError(
                f"{segment} was not archived within {wait_seconds:.0f} s"
                + (f": {status.problem()}" if status.problem() else "")
            )
        time.sleep(0.2)
    if not WalArchive(settings.open_repository()).copies(segment):
        raise IntegrityError(
            f"the server reports {segment} archived, but it is not in "
            f"{settings.open_repository().url}: is archive_command pointing at this repository?"
        )
    return status, segment
