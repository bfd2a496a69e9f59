"""Second-line guards of the WAL archive, base backups and PITR (issue 15)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pitr_support import archiving_cluster, shared_dir
from test_wal_archive import segments_of, wal

from rfbackup.sandbox.postgres import ThrowawayPostgres


def walk(folder: Path) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(folder):
        found += [str((Path(dirpath) / n).relative_to(folder)) for n in files]
    return sorted(found)


def test_wal_fetch_refuses_another_valid_segment_under_the_name(pg: ThrowawayPostgres) -> None:
    """The archived copy of A replaced by B's archived copy: valid zstd, a real segment of
    the same cluster and the same size, so nothing but the sha256 can tell. Recovery must
    stop (exit 126), and nothing is handed to PostgreSQL."""
    work = shared_dir("rfbackup-wal-")
    try:
        repo = work / "repo"
        a, b = segments_of(pg, 2, work / "pg_wal")
        for seg in (a, b):
            r = wal("wal-push", str(seg), repo=str(repo))
            assert r.returncode == 0, r.stderr
        (stored_a,) = (repo / "wal").rglob(f"{a.name}-*")
        (stored_b,) = (repo / "wal").rglob(f"{b.name}-*")
        shutil.copyfile(stored_b, stored_a)
        out = work / "restore"
        out.mkdir()
        r = wal("wal-fetch", a.name, str(out / "RECOVERYXLOG"), repo=str(repo))
        assert r.returncode == 126, r.stderr
        assert "content does not match its sha256" in r.stderr
        assert walk(out) == []
    finally:
        shutil.rmtree(work)


def test_wal_push_refuses_a_truncated_segment(pg: ThrowawayPostgres) -> None:
    work = shared_dir("rfbackup-wal-")
    try:
        repo = work / "repo"
        (seg,) = segments_of(pg, 1, work / "pg_wal")
        data = seg.read_bytes()
        seg.write_bytes(data[: len(data) // 2])  # a valid header, half the segment
        r = wal("wal-push", str(seg), repo=str(repo))
        assert r.returncode == 6, r.stderr
        assert "truncated" in r.stderr
        assert not any(seg.name in f for f in walk(repo))
    finally:
        shutil.rmtree(work)


def test_pitr_refuses_a_target_after_the_archived_wal() -> None:
    """Nothing after the target is archived yet: recovery could not know it reached the
    target, so it refuses (exit 7) before creating the data directory."""
    with archiving_cluster() as cluster:
        b = cluster.run("backup", "base")
        assert b.returncode == 0, b.stderr
        # A moment after everything archived so far, beyond the archive's 1 s time resolution.
        target = cluster.sql(
            "SELECT to_char((now() + interval '3 seconds') AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')'
        )
        data_dir = cluster.new_data_dir()
        r = cluster.run("pitr", "restore", "--target-time", target, "--data-dir", str(data_dir))
        assert r.returncode == 7, r.stderr
        assert "the WAL up to the target is still in the server's current segment" in r.stderr
        assert not data_dir.exists()


def test_base_backup_whose_wal_never_arrives_is_deleted() -> None:
    """A base backup is committed (manifest) only once its WAL is archived; when that WAL
    never comes, the stored copy is deleted and nothing under base/ remains."""
    with archiving_cluster() as cluster:
        cluster.sql("ALTER SYSTEM SET archive_command = 'false'")
        cluster.sql("SELECT pg_reload_conf()")
        r = cluster.run("backup", "base", RFBACKUP_PITR__ARCHIVE_WAIT_SECONDS="3")
        assert r.returncode == 6, r.stderr
        assert "did not reach the archive" in r.stderr
        assert walk(Path(cluster.repo) / "base") == []
