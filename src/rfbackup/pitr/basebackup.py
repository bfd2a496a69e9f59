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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rfbackup import __version__, interrupts
from rfbackup.config import PostgresTarget, Settings
from rfbackup.errors import ConfigError, IntegrityError, SourceError
from rfbackup.lease import Lease, ensure_held, job
from rfbackup.logs import log
from rfbackup.manifest import Manifest, StoredFile
from rfbackup.pipeline import BLOCK_SIZE, StoredStream
from rfbackup.pitr.archive import WalArchive
from rfbackup.pitr.walnames import Segment, end_segment, format_lsn, parse_lsn
from rfbackup.progress import Reporter, human_bytes
from rfbackup.signing import Signer, sign_manifest
from rfbackup.storage import Repository, put_bytes

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
    from rfbackup.backup import repository_lock

    what, path = repository_lock(repo, COMPONENT, settings.locks)
    return job(repo, COMPONENT, what, path, settings.locks.lease_seconds)


def backup_base(settings: Settings, repo: Repository | None = None) -> Manifest:
    target = settings.postgres_target()
    recipients = settings.backup_recipients()
    Signer.from_options(settings.signing)  # a bad key fails now, not after the backup
    repo = repo or settings.open_repository()
    archive = WalArchive(repo)
    server = inspect(target)
    check_archiving(server, archive)
    if server.tablespaces:
        raise ConfigError(
            "this server has tablespaces outside the data directory; base backups support "
            "only the default tablespaces"
        )
    with base_backup_job(settings, repo):
        for obj in repo.list(PREFIX, include_partial=True):
            if obj.partial:
                log.warning("removing %s left by an interrupted run", repo.describe(obj.key))
                repo.discard_partial(obj.key)
        return _run(settings, repo, archive, target, server, recipients)


def _run(
    settings: Settings,
    repo: Repository,
    archive: WalArchive,
    target: PostgresTarget,
    server: Server,
    recipients: list[str],
) -> Manifest:
    from rfbackup.encryption import parse_recipients
    from rfbackup.sources.postgres import tools

    policy = settings.pitr
    age = parse_recipients(recipients)
    started = datetime.now(UTC)
    while repo.stat(key := base_key(started, bool(age))) is not None:
        time.sleep(0.5)
        started = datetime.now(UTC)
    t0 = time.monotonic()
    log.info(
        "base backup %s of %s (%s) to %s started", key, target.display, server.version, repo.url
    )
    program = tools.find("pg_basebackup", target.bin_dir)
    cmd = [program, "-D", "-", "-Ft", "-X", "fetch", "-v", f"--checkpoint={policy.checkpoint}"]
    cmd += ["--label", f"rfbackup {started.strftime(STAMP)}"]
    committed: list[str] = []
    try:
        threads = policy.compression_threads
        opened: StoredStream | None = None
        proc: subprocess.Popen[bytes] | None = None
        try:
            with interrupts.deferred():  # the partial file exists only with its abort
                opened = StoredStream(repo.writer(key), "zstd", policy.zstd_level, threads, age)
            stream = opened
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=target.child_env()
            )
            assert proc.stdout is not None and proc.stderr is not None
            errors = tools.StderrTail(proc.stderr, keep=200)
            with Reporter("copying the data directory", server.size_bytes) as progress:
                while chunk := proc.stdout.read(BLOCK_SIZE):
                    stream.write(chunk)
                    progress.advance(len(chunk))
            rc = proc.wait()
            errors.join()
            if rc != 0:
                raise SourceError(f"pg_basebackup failed (exit {rc}): {errors.last}")
            start_lsn, timeline, stop_lsn = _positions(list(errors.lines))
            stop_time = datetime.now(UTC)
            stream.commit()
        except BaseException:
            if proc is not None:
                tools.stop(proc)
            if opened is not None:
                opened.abort()
            else:  # stopped while the writer was being made: whatever it began is ours
                repo.discard_partial(key)
            raise
        committed.append(key)
        first = Segment.of_lsn(timeline, start_lsn, server.segment_size)
        last = end_segment(timeline, stop_lsn, server.segment_size)
        wait_for_wal(archive, first, last, policy.archive_wait_seconds)
        manifest = Manifest(
            name=key,
            component=COMPONENT,
            environment=settings.env.value,
            tool_version=__version__,
            started_at=started.isoformat(),
            finished_at=datetime.now(UTC).isoformat(),
            duration_seconds=round(time.monotonic() - t0, 3),
            compression="zstd",
            compression_level=policy.zstd_level,
            data=StoredFile(key, stream.sha256, stream.stored_bytes, stream.raw_bytes),
            database={"host": target.host, "port": target.port, "version": server.version},
            encryption={"format": "age", "recipients": recipients} if age else {},
            physical={
                "system_identifier": str(server.system_identifier),
                "pg_version_num": server.version_num,
                "timeline": timeline,
                "start_lsn": format_lsn(start_lsn),
                "stop_lsn": format_lsn(stop_lsn),
                "stop_time": stop_time.isoformat(),
                "wal_segment_size": server.segment_size,
                "wal_start": first.name,
                "wal_stop": last.name,
                "format": "tar",
                "wal_included": True,
                "backup_manifest": True,
            },
        )
        sign_manifest(settings, manifest)
        ensure_held()
        put_bytes(repo, key + ".manifest.json", manifest.to_json())  # the commit point
    except BaseException:
        repo.delete(committed)
        raise
    log.info(
        "base backup %s done: %s raw -> %s stored in %.1f s, WAL %s..%s archived",
        key,
        human_bytes(stream.raw_bytes),
        human_bytes(stream.stored_bytes),
        manifest.duration_seconds,
        first.name,
        last.name,
    )
    return manifest


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
