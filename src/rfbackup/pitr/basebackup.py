"""Physical base backups: ``pg_basebackup`` as one tar stream, through our pipeline.

    checks -> pg_basebackup -D - -Ft -X fetch -> zstd -> [age] -> sha256 -> base/STAMP.tar.zst
           -> wait until WAL start..stop is archived -> manifest LAST (the commit point)

The tar holds the WAL the copy needs to be consistent (``-X fetch``) and PostgreSQL's own
``backup_manifest``, which ``pitr`` checks the files against while extracting. A backup
whose WAL never reaches the archive is deleted: without that WAL, no recovery can start
from it, so it must not look like a backup.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Generator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rfbackup.config import Settings
from rfbackup.engine.source import Keys, SourceBase
from rfbackup.errors import ConfigError, IntegrityError, SourceError
from rfbackup.lease import Lease
from rfbackup.manifest import Manifest
from rfbackup.pipeline import BLOCK_SIZE
from rfbackup.pitr.archive import WalArchive
from rfbackup.pitr.walnames import Segment, end_segment, format_lsn, parse_lsn
from rfbackup.sources.postgres.target import PostgresTarget
from rfbackup.storage import Repository

COMPONENT = "postgres-base"
PREFIX = "base/"
STAMP = "%Y%m%dT%H%M%SZ"

_START_RE = re.compile(r"write-ahead log start point: (\S+) on timeline (\d+)")
_END_RE = re.compile(r"write-ahead log end point: (\S+)")


@dataclass(frozen=True)
class Server:
    """What we learn from the running cluster before copying it."""

    system_identifier: int
    version_num: int
    version: str
    segment_size: int
    archive_mode: str
    archive_command: str
    tablespaces: int
    size_bytes: int
    archived_count: int


def inspect(target: PostgresTarget) -> Server:
    from rfbackup.sources.postgres.dump import connect

    with connect(target) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT system_identifier FROM pg_control_system()),"
            " current_setting('server_version_num')::int, current_setting('server_version'),"
            " pg_size_bytes(current_setting('wal_segment_size')),"
            " current_setting('archive_mode'), current_setting('archive_command'),"
            " (SELECT count(*) FROM pg_tablespace"
            "   WHERE spcname NOT IN ('pg_default', 'pg_global')),"
            " (SELECT sum(pg_database_size(oid)) FROM pg_database),"
            " (SELECT archived_count FROM pg_stat_archiver)"
        )
        row = cur.fetchone()
    assert row is not None
    return Server(
        int(row[0]), row[1], row[2], int(row[3]), row[4], row[5], row[6], int(row[7]), row[8]
    )


def base_key(stamp: datetime, encrypted: bool) -> str:
    return f"{PREFIX}{stamp.strftime(STAMP)}.tar.zst" + (".age" if encrypted else "")


def check_archiving(server: Server, archive: WalArchive) -> None:
    if server.archive_mode == "off" or not server.archive_command.strip():
        raise ConfigError(
            "WAL archiving is off on this server, so a base backup could never be recovered "
            "to a point in time: run `rfbackup pitr setup` and restart PostgreSQL"
        )
    info = archive.info()
    if info is None and server.archived_count > 0:
        raise ConfigError(
            f"this server archives WAL, but not into {archive.repo.url} (its WAL archive is "
            f"empty): archive_command = {server.archive_command!r}; back up to the repository "
            "it archives into, or run `rfbackup pitr setup`"
        )
    if info is not None and info.system_identifier != str(server.system_identifier):
        raise IntegrityError(
            f"the WAL archive at {archive.repo.url} belongs to system "
            f"{info.system_identifier}, not to this server ({server.system_identifier})"
        )


def base_backup_job(settings: Settings, repo: Repository) -> AbstractContextManager[Lease]:
    """The lock and lease of base backups, shared with `pitr prune`."""
    from rfbackup.engine.locks import component_job

    return component_job(repo, COMPONENT, settings.locks)


class PostgresBase(SourceBase):
    """The whole cluster as one tar stream, for point-in-time recovery."""

    component = COMPONENT
    compression = "zstd"

    def __init__(self, settings: Settings) -> None:
        self.target = settings.postgres_target()
        self.policy = settings.pitr
        self.level = self.policy.zstd_level
        self.threads = self.policy.compression_threads
        self.progress_label = "copying the data directory"
        self._server: Server | None = None
        self._archive: WalArchive | None = None
        self._physical: dict[str, Any] = {}

    def prepare(self, repo: Repository) -> None:
        self._archive = WalArchive(repo)
        self._server = server = inspect(self.target)
        self.size_estimate = server.size_bytes
        check_archiving(server, self._archive)
        if server.tablespaces:
            raise ConfigError(
                "this server has tablespaces outside the data directory; base backups "
                "support only the default tablespaces"
            )

    @property
    def server(self) -> Server:
        if self._server is None:
            raise RuntimeError("prepare() first")
        return self._server

    def subject(self) -> str:
        return str(self._server.system_identifier) if self._server else ""

    def describe(self) -> str:
        return f"{self.target.display} ({self.server.version})"

    def keys(self, at: datetime, encrypted: bool, layout: str) -> Keys:
        return Keys(f"{PREFIX}{at.strftime(STAMP)}", ".tar.zst", encrypted)

    def owns(self, key: str) -> bool:
        return key.startswith(PREFIX)

    def stream(self) -> Generator[bytes]:
        from rfbackup.sources.postgres import tools

        started = datetime.now(UTC)
        program = tools.find("pg_basebackup", self.target.bin_dir)
        cmd = [program, "-D", "-", "-Ft", "-X", "fetch", "-v"]
        cmd += [f"--checkpoint={self.policy.checkpoint}"]
        cmd += ["--label", f"rfbackup {started.strftime(STAMP)}"]
        self._physical = {}
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.target.child_env()
        )
        try:
            assert proc.stdout is not None and proc.stderr is not None
            errors = tools.StderrTail(proc.stderr, keep=200)
            while chunk := proc.stdout.read(BLOCK_SIZE):
                yield chunk
            rc = proc.wait()
            errors.join()
            if rc != 0:
                raise SourceError(f"pg_basebackup failed (exit {rc}): {errors.last}")
        except BaseException:
            tools.stop(proc)
            raise
        start_lsn, timeline, stop_lsn = _positions(list(errors.lines))
        server = self.server
        first = Segment.of_lsn(timeline, start_lsn, server.segment_size)
        last = end_segment(timeline, stop_lsn, server.segment_size)
        self._physical = {
            "system_identifier": str(server.system_identifier),
            "pg_version_num": server.version_num,
            "timeline": timeline,
            "start_lsn": format_lsn(start_lsn),
            "stop_lsn": format_lsn(stop_lsn),
            "stop_time": datetime.now(UTC).isoformat(),
            "wal_segment_size": server.segment_size,
            "wal_start": first.name,
            "wal_stop": last.name,
            "format": "tar",
            "wal_included": True,
            "backup_manifest": True,
        }

    def before_commit(self) -> None:
        """Without the WAL from start to stop in the archive, no recovery can start from
        this copy: wait for it, else the backup is deleted."""
        assert self._archive is not None
        p = self._physical
        size = int(p["wal_segment_size"])
        first = Segment.parse(str(p["wal_start"]), size)
        last = Segment.parse(str(p["wal_stop"]), size)
        assert first is not None and last is not None
        wait_for_wal(self._archive, first, last, self.policy.archive_wait_seconds)

    def section(self) -> dict[str, Any]:
        server = self.server
        host = {"host": self.target.host, "port": self.target.port, "version": server.version}
        return {"database": host, "physical": self._physical}

    def summary(self) -> str:
        p = self._physical
        return f"WAL {p.get('wal_start')}..{p.get('wal_stop')} archived"


def backup_base(settings: Settings, repo: Repository | None = None) -> Manifest:
    from rfbackup.engine import job

    return job.backup(settings, PostgresBase(settings), repo or settings.open_repository())


def _positions(lines: list[str]) -> tuple[int, int, int]:
    """Start LSN, timeline and stop LSN from pg_basebackup's verbose output."""
    text = "\n".join(lines)
    start, end = _START_RE.search(text), _END_RE.search(text)
    if not start or not end:
        raise SourceError("pg_basebackup did not report its WAL start and end points")
    return parse_lsn(start.group(1)), int(start.group(2)), parse_lsn(end.group(1))


def wait_for_wal(archive: WalArchive, first: Segment, last: Segment, timeout: float) -> None:
    """Block until every segment from ``first`` to ``last`` is in the archive."""
    deadline = time.monotonic() + timeout
    seg = first
    while seg <= last:
        if archive.copies(seg.name):
            seg = seg.next()
            continue
        if time.monotonic() > deadline:
            raise IntegrityError(
                f"WAL segment {seg.name}, which this base backup needs, did not reach the "
                f"archive within {timeout:.0f} s; check archive_command and the server log "
                "(the base backup was deleted)"
            )
        time.sleep(0.5)


def wal_range(m: Manifest) -> tuple[Segment, Segment]:
    """The first and last WAL segment a base backup needs, from its manifest."""
    p = m.physical
    size = int(p["wal_segment_size"])
    first, last = Segment.parse(str(p["wal_start"]), size), Segment.parse(str(p["wal_stop"]), size)
    if first is None or last is None:
        raise IntegrityError(f"{m.name}: the manifest's WAL range is unreadable")
    return first, last


def describe(m: Manifest) -> dict[str, Any]:
    p = m.physical
    return {
        "name": m.name,
        "started_at": m.started_at,
        "finished_at": m.finished_at,
        "timeline": p.get("timeline"),
        "start_lsn": p.get("start_lsn"),
        "stop_lsn": p.get("stop_lsn"),
        "wal_start": p.get("wal_start"),
        "wal_stop": p.get("wal_stop"),
        "system_identifier": p.get("system_identifier"),
        "size_bytes": m.data.stored_bytes,
        "raw_bytes": m.data.raw_bytes,
        "duration_seconds": m.duration_seconds,
        "encrypted": bool(m.encryption),
    }
