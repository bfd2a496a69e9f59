"""The pusher packs the first segment while it opens the repository: when the repository does
not open, or the archive belongs to another cluster, nothing packed is stored or marked, and
the call that waits gets the reason."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pitr_support import RFBACKUP_EXE, base_env
from test_perf_walpush import _archiver, _kill_pusher, _markers, _push, _wait_gone
from test_wal_archive import archived, segments_of

from rfbackup.sandbox.postgres import ThrowawayPostgres


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    _kill_pusher(tmp_path / "pg_wal")


def test_a_repository_that_does_not_open_stores_and_marks_nothing(
    pg: ThrowawayPostgres, work: Path
) -> None:
    segs = segments_of(pg, 4, work / "pg_wal")
    bad = subprocess.run(
        [str(RFBACKUP_EXE), "wal-push", "--repo", "ftp://nowhere/wal", f"pg_wal/{segs[0].name}"],
        cwd=work,
        env=base_env(work),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 3, bad.stderr  # ConfigError, from the pusher
    assert "unsupported repository URL 'ftp://nowhere/wal'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    _wait_gone(work / "pg_wal")
    assert _markers(work / "pg_wal") == set()
    repo = work / "repo"
    assert _archiver(work, repo) == [s.name for s in segs]  # fixed: all of them, in order
    assert archived(repo) == {s.name: s.read_bytes() for s in segs}


def test_an_archive_of_another_cluster_gets_none_of_the_packed_segments(
    pg: ThrowawayPostgres, work: Path
) -> None:
    segs = segments_of(pg, 6, work / "pg_wal")
    repo = work / "repo"
    (repo / "wal").mkdir(parents=True)
    other = {
        "system_identifier": "1234567890",
        "wal_segment_size": 16 * 1024 * 1024,
        "created_at": "2026-01-01T00:00:00+00:00",
        "format": "rfbackup-wal-archive/1",
    }
    (repo / "wal" / "archive.json").write_text(json.dumps(other))
    for _ in range(2):  # PostgreSQL asks again: the same answer
        r = _push(work, segs[0].name, repo)
        assert r.returncode == 6, r.stderr  # IntegrityError
        assert "belongs to system 1234567890" in r.stderr
        _wait_gone(work / "pg_wal")
        assert _markers(work / "pg_wal") == set()
        stored = [p for p in (repo / "wal").rglob("*") if p.is_file()]
        assert stored == [repo / "wal" / "archive.json"], stored
