"""A first wal-push killed while it wrote the archive's identity (wal/archive.json) leaves a
hidden partial behind. The next wal-push must get past it, not fail until someone cleans up:
PostgreSQL would retry the same segment forever while pg_wal grows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_perf_walpush import _kill_pusher, _push
from test_wal_archive import archived, segments_of

from rfbackup.sandbox.postgres import ThrowawayPostgres


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    _kill_pusher(tmp_path / "pg_wal")


def test_pusher_gets_past_a_killed_first_push(pg: ThrowawayPostgres, work: Path) -> None:
    segs = segments_of(pg, 2, work / "pg_wal")
    stale = _stale_info_partial(work / "repo")
    r = _push(work, segs[0].name, work / "repo")
    assert r.returncode == 0, r.stderr
    # the pusher goes on with segs[1] after answering: its partial may be there meanwhile
    assert archived(work / "repo", partials=True).get(segs[0].name) == segs[0].read_bytes()
    assert (work / "repo" / "wal" / "archive.json").is_file()
    assert not stale.exists()


def test_a_direct_push_names_the_leftover_and_what_to_do(pg: ThrowawayPostgres, work: Path) -> None:
    """A push of a file PostgreSQL did not mark ready runs without the pusher's lock, so it
    cannot know the partial is abandoned: one line naming it and what to do, nothing stored."""
    segs = segments_of(pg, 2, work / "pg_wal")
    (work / "pg_wal" / "archive_status" / f"{segs[0].name}.ready").unlink()
    stale = _stale_info_partial(work / "repo")
    r = _push(work, segs[0].name, work / "repo")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(stale) in lines[0] and "no wal-push is running" in lines[0], lines[0]
    assert stale.exists() and not (work / "repo" / "wal" / "archive.json").exists()
    assert archived(work / "repo", partials=True) == {}


def _stale_info_partial(repo: Path) -> Path:
    (repo / "wal").mkdir(parents=True)
    stale = repo / "wal" / ".archive.json.partial"
    stale.write_bytes(b'{"format": 1, "syst')  # what a kill mid-write leaves
    return stale
