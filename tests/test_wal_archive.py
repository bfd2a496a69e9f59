"""wal-push / wal-fetch / wal-verify against real WAL from real clusters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from pitr_support import RFBACKUP_EXE, archiving_cluster, base_env, shared_dir

from rfbackup.pitr.archive import WalArchive
from rfbackup.sandbox.postgres import ThrowawayPostgres
from rfbackup.storage.local import LocalRepository


def wal(*args: str, repo: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RFBACKUP_EXE), *args[:1], "--repo", repo, *args[1:]],
        env=base_env(cwd or Path.cwd()),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def segments_of(pg: ThrowawayPostgres, count: int, into: Path) -> list[Path]:
    """Copy ``count`` completed WAL segments of ``pg`` into a pg_wal-like folder."""
    first = pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    for i in range(count):
        pg.psql(f"CREATE TABLE IF NOT EXISTS walgen (i int); INSERT INTO walgen VALUES ({i})")
        pg.psql("SELECT pg_switch_wal()")
    (into / "archive_status").mkdir(parents=True, exist_ok=True)
    names = sorted(n for n in os.listdir(pg.data_dir / "pg_wal") if len(n) == 24 and n >= first)
    copies = []
    for name in names[:count]:
        shutil.copy(pg.data_dir / "pg_wal" / name, into / name)
        (into / "archive_status" / f"{name}.ready").touch()
        copies.append(into / name)
    assert len(copies) == count
    return copies


def test_push_duplicate_identical_ok_different_refused(pg: ThrowawayPostgres) -> None:
    work = shared_dir("rfbackup-wal-")
    repo = str(work / "repo")
    seg = segments_of(pg, 1, work / "pg_wal")[0]
    assert wal("wal-push", str(seg), repo=repo).returncode == 0
    assert wal("wal-push", str(seg), repo=repo).returncode == 0  # identical: fine
    data = bytearray(seg.read_bytes())
    data[100_000] ^= 0xFF
    seg.write_bytes(bytes(data))
    r = wal("wal-push", str(seg), repo=repo)
    assert r.returncode == 6 and "different content" in r.stderr
    archived = list(WalArchive(LocalRepository(Path(repo))).all())
    assert [a.name for a in archived] == [seg.name]
    shutil.rmtree(work)


def test_foreign_cluster_refused(pg: ThrowawayPostgres) -> None:
    with archiving_cluster() as cluster:
        cluster.sql("CREATE TABLE t (i int)")
        cluster.switch_and_wait()
        foreign = segments_of(pg, 1, cluster.work / "foreign")[0]
        r = wal("wal-push", str(foreign), repo=cluster.repo)
        assert r.returncode == 6, r.stderr
        assert "refused" in r.stderr and "belongs to system" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_fetch_round_trip_missing_is_quiet_and_corrupt_is_fatal(pg: ThrowawayPostgres) -> None:
    work = shared_dir("rfbackup-wal-")
    repo = str(work / "repo")
    segs = segments_of(pg, 2, work / "pg_wal")
    assert wal("wal-push", str(segs[0]), repo=repo).returncode == 0
    out = work / "restore"
    out.mkdir()
    r = wal("wal-fetch", segs[0].name, str(out / "RECOVERYXLOG"), repo=repo)
    assert r.returncode == 0, r.stderr
    assert (out / "RECOVERYXLOG").read_bytes() == segs[0].read_bytes()
    missing = wal("wal-fetch", "00000001000000FF000000FF", str(out / "X"), repo=repo)
    assert (missing.returncode, missing.stderr) == (1, "")
    history = wal("wal-fetch", "00000002.history", str(out / "X"), repo=repo)
    assert (history.returncode, history.stderr) == (1, "")
    # corrupt the archived copy: recovery must stop (exit > 125), never take it as the end
    (stored,) = list((Path(repo) / "wal").rglob(f"{segs[0].name}-*"))
    blob = bytearray(stored.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    stored.write_bytes(bytes(blob))
    bad = wal("wal-fetch", segs[0].name, str(out / "Y"), repo=repo)
    assert bad.returncode == 126
    assert "corrupt" in bad.stderr or "sha256" in bad.stderr
    assert not (out / "Y").exists()
    shutil.rmtree(work)


def test_push_sends_ready_segments_ahead_and_later_calls_are_instant(
    pg: ThrowawayPostgres,
) -> None:
    work = shared_dir("rfbackup-wal-")
    repo = str(work / "repo")
    segs = segments_of(pg, 4, work / "pg_wal")
    r = wal("wal-push", str(segs[0]), repo=repo)
    assert r.returncode == 0, r.stderr
    markers = sorted(os.listdir(work / "pg_wal" / "rfbackup_status"))
    assert markers == [f"{s.name}.pushed" for s in segs[1:]]
    archive = WalArchive(LocalRepository(Path(repo)))
    assert sorted(a.name for a in archive.all()) == [s.name for s in segs]
    # PostgreSQL then asks for the next one: answered from the marker, marker consumed
    os.rename(
        work / "pg_wal" / "archive_status" / f"{segs[0].name}.ready",
        work / "pg_wal" / "archive_status" / f"{segs[0].name}.done",
    )
    r = wal("wal-push", str(segs[1]), repo="/nonexistent/repo/never/read")
    assert r.returncode == 0, r.stderr
    assert not (work / "pg_wal" / "rfbackup_status" / f"{segs[1].name}.pushed").exists()
    # and what was pushed ahead fetches back byte for byte
    for seg in segs:
        r = wal("wal-fetch", seg.name, str(work / "got"), repo=repo)
        assert r.returncode == 0 and (work / "got").read_bytes() == seg.read_bytes()
    shutil.rmtree(work)


def test_missing_segment_found_by_wal_verify_and_pitr() -> None:
    with archiving_cluster() as cluster:
        assert cluster.run("backup", "base").returncode == 0
        cluster.sql("CREATE TABLE t (i int)")
        names = []
        for i in range(3):
            cluster.sql(f"INSERT INTO t VALUES ({i})")
            names.append(cluster.switch_and_wait())
        ok = cluster.run("wal-verify", "--json")
        assert ok.returncode == 0 and json.loads(ok.stdout)["missing"] == []
        (lost,) = list((Path(cluster.repo) / "wal").rglob(f"{names[1]}-*"))
        lost.unlink()

        verify = cluster.run("wal-verify", "--json")
        assert verify.returncode == 6
        assert json.loads(verify.stdout)["missing"] == [names[1]]
        data_dir = cluster.new_data_dir()
        r = cluster.run("pitr", "restore", "--latest", "--data-dir", str(data_dir))
        assert r.returncode == 7 and names[1] in r.stderr
        assert not data_dir.exists()  # refused before writing anything
