"""wal-push / wal-fetch / wal-verify against real WAL from real clusters."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from pitr_support import RFBACKUP_EXE, archiving_cluster, base_env, shared_dir

from rfbackup.sandbox.postgres import ThrowawayPostgres


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder the postgres user can write, removed after the test whatever happens."""
    path = shared_dir("rfbackup-wal-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def archived(repo: str | Path, *, partials: bool = False) -> dict[str, bytes]:
    """What the archive holds, read without rfbackup: a walk of wal/, each file unpacked with
    zstandard and checked against the sha256 in its name. Name -> original bytes.

    partials=True lets hidden `.NAME.partial` files through (a write killed mid-way leaves one;
    it is never a stored copy, and the next push of that segment removes it)."""
    found = {}
    for dirpath, _dirs, files in os.walk(Path(repo) / "wal"):
        for file in files:
            if file == "archive.json":
                continue
            if partials and file.startswith(".") and file.endswith(".partial"):
                continue
            assert file.endswith(".zst") and not file.startswith("."), file
            name, _, sha = file.removesuffix(".zst").partition("-")
            data = zstandard.ZstdDecompressor().decompress(Path(dirpath, file).read_bytes())
            assert hashlib.sha256(data).hexdigest() == sha, file
            assert name not in found, f"{name} archived twice"
            found[name] = data
    return found


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


def test_push_duplicate_identical_ok_different_refused(pg: ThrowawayPostgres, work: Path) -> None:
    repo = str(work / "repo")
    seg = segments_of(pg, 1, work / "pg_wal")[0]
    original = seg.read_bytes()
    assert wal("wal-push", str(seg), repo=repo).returncode == 0
    assert wal("wal-push", str(seg), repo=repo).returncode == 0  # identical: fine
    data = bytearray(original)
    data[100_000] ^= 0xFF
    seg.write_bytes(bytes(data))
    r = wal("wal-push", str(seg), repo=repo)
    assert r.returncode == 6 and "different content" in r.stderr
    assert archived(repo) == {seg.name: original}


def test_foreign_cluster_refused(pg: ThrowawayPostgres) -> None:
    with archiving_cluster() as cluster:
        cluster.sql("CREATE TABLE t (i int)")
        cluster.switch_and_wait()
        foreign = segments_of(pg, 1, cluster.work / "foreign")[0]
        r = wal("wal-push", str(foreign), repo=cluster.repo)
        assert r.returncode == 6, r.stderr
        assert "refused" in r.stderr and "belongs to system" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_fetch_round_trip_missing_is_quiet_and_corrupt_is_fatal(
    pg: ThrowawayPostgres, work: Path
) -> None:
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
    # a truncated archived copy (the decoder's catch; another valid segment under the name,
    # the sha256's, is test_guards_wal's): recovery must stop (exit > 125), never take it
    # for the end of WAL
    (stored,) = list((Path(repo) / "wal").rglob(f"{segs[0].name}-*"))
    stored.write_bytes(stored.read_bytes()[: stored.stat().st_size // 2])
    bad = wal("wal-fetch", segs[0].name, str(out / "Y"), repo=repo)
    assert bad.returncode == 126
    assert f"{stored}: corrupt (" in bad.stderr
    leftovers = [n for n in os.listdir(out) if "Y" in n.removeprefix("RECOVERYXLOG")]
    assert leftovers == []  # no Y, and no temporary file for it


def test_push_sends_ready_segments_ahead_and_later_calls_are_instant(
    pg: ThrowawayPostgres, work: Path
) -> None:
    repo = str(work / "repo")
    segs = segments_of(pg, 4, work / "pg_wal")
    r = wal("wal-push", str(segs[0]), repo=repo)
    assert r.returncode == 0, r.stderr
    folder = work / "pg_wal" / "rfbackup_status"  # also the pusher's lock and log
    # the call returns once its own segment is stored; the pusher goes on with the others
    wanted = [f"{s.name}.pushed" for s in segs[1:]]
    deadline = time.monotonic() + 60
    while (markers := sorted(n for n in os.listdir(folder) if n.endswith(".pushed"))) != wanted:
        assert time.monotonic() < deadline, markers
        time.sleep(0.05)
    assert archived(repo) == {s.name: s.read_bytes() for s in segs}
    # PostgreSQL then asks for the next one: answered from the marker, marker consumed
    os.rename(
        work / "pg_wal" / "archive_status" / f"{segs[0].name}.ready",
        work / "pg_wal" / "archive_status" / f"{segs[0].name}.done",
    )
    # the repository is moved away: an answer that read it would fail or recreate it
    # (a marker counts only for the same destination, so the same --repo is given)
    os.rename(repo, f"{repo}.away")
    r = wal("wal-push", str(segs[1]), repo=repo)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(repo)
    os.rename(f"{repo}.away", repo)
    assert not (work / "pg_wal" / "rfbackup_status" / f"{segs[1].name}.pushed").exists()
    # and what was pushed ahead fetches back byte for byte
    for seg in segs:
        r = wal("wal-fetch", seg.name, str(work / "got"), repo=repo)
        assert r.returncode == 0 and (work / "got").read_bytes() == seg.read_bytes()


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
