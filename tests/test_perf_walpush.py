"""wal-push through the background pusher: nothing is reported archived before it is stored,
each segment gets its own answer, and markers never count for another destination."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pitr_support import RFBACKUP_EXE, base_env
from test_wal_archive import archived, segments_of

from rfbackup.pitr.pusher import LOCK, STATUS_DIR
from rfbackup.sandbox.postgres import ThrowawayPostgres


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    _kill_pusher(tmp_path / "pg_wal")


def _env(work: Path, **extra: str) -> dict[str, str]:
    return {**base_env(work), **extra}


def _push(work: Path, name: str, repo: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RFBACKUP_EXE), "wal-push", "--repo", str(repo), f"pg_wal/{name}"],
        cwd=work,
        env=_env(work, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _archiver(work: Path, repo: Path, **extra: str) -> list[str]:
    """PostgreSQL's archiver: oldest .ready first, one call at a time, .ready -> .done on 0.
    Returns the names archived."""
    status = work / "pg_wal" / "archive_status"
    done = []
    while ready := sorted(n for n in os.listdir(status) if n.endswith(".ready")):
        name = ready[0].removesuffix(".ready")
        r = _push(work, name, repo, **extra)
        assert r.returncode == 0, r.stderr
        os.rename(status / f"{name}.ready", status / f"{name}.done")
        done.append(name)
    return done


def _pusher_pid(wal_dir: Path) -> int | None:
    try:
        text = (wal_dir / STATUS_DIR / LOCK).read_text()
    except OSError:
        return None
    pid = text[64:].strip()
    return int(pid) if pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (our fork's child, not yet reaped by anyone) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _kill_pusher(wal_dir: Path) -> None:
    pid = _pusher_pid(wal_dir)
    if pid is not None and _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _wait_gone(wal_dir: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (pid := _pusher_pid(wal_dir)) is not None and _alive(pid):
        assert time.monotonic() < deadline, "the pusher did not exit"
        time.sleep(0.05)


def _markers(wal_dir: Path) -> set[str]:
    folder = wal_dir / STATUS_DIR
    return {n.removesuffix(".pushed") for n in os.listdir(folder) if n.endswith(".pushed")}


def test_killed_pusher_never_leaves_a_marker_for_a_segment_not_stored(
    pg: ThrowawayPostgres, work: Path
) -> None:
    segs = segments_of(pg, 16, work / "pg_wal")
    content = {s.name: s.read_bytes() for s in segs}
    repo = work / "repo"
    # small rounds on one thread: kills land between, and inside, stores of a round
    small = {"RFBACKUP_PITR__PUSH_BATCH": "3", "RFBACKUP_PITR__PUSH_THREADS": "1"}
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        status = work / "pg_wal" / "archive_status"
        ready = sorted(n.removesuffix(".ready") for n in os.listdir(status) if n.endswith(".ready"))
        if not ready:
            break
        call = subprocess.Popen(
            [str(RFBACKUP_EXE), "wal-push", "--repo", str(repo), f"pg_wal/{ready[0]}"],
            cwd=work,
            env=_env(work, **small),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, 1.2))
        pid = _pusher_pid(work / "pg_wal")
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
            kills += 1
        call.kill()
        call.wait()
        _wait_gone(work / "pg_wal")
        # every marker stands for a stored copy with the right content
        stored = archived(repo, partials=True) if (repo / "wal").exists() else {}
        for name in _markers(work / "pg_wal"):
            assert stored.get(name) == content[name], f"{name} marked but not stored"
        for name, data in stored.items():
            assert data == content[name]
    assert kills >= 3, "the kills all missed the pusher: make its work slower"
    # then the archiver runs to the end: everything stored, byte for byte (a killed write's
    # partial file does not block the retry)
    _archiver(work, repo)
    assert archived(repo) == content
    assert not list((repo / "wal").rglob(".*.partial"))


def test_each_segment_gets_its_own_answer(pg: ThrowawayPostgres, work: Path) -> None:
    segs = segments_of(pg, 5, work / "pg_wal")
    good = segs[2].read_bytes()
    segs[2].write_bytes(segs[3].read_bytes())  # a recycled file under the wrong name
    repo = work / "repo"
    assert _push(work, segs[0].name, repo).returncode == 0
    (work / "pg_wal" / "archive_status" / f"{segs[0].name}.ready").rename(
        work / "pg_wal" / "archive_status" / f"{segs[0].name}.done"
    )
    assert _push(work, segs[1].name, repo).returncode == 0
    (work / "pg_wal" / "archive_status" / f"{segs[1].name}.ready").rename(
        work / "pg_wal" / "archive_status" / f"{segs[1].name}.done"
    )
    bad = _push(work, segs[2].name, repo)
    assert bad.returncode == 6, bad.stderr
    assert "renamed or recycled" in bad.stderr and segs[2].name in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert segs[2].name not in archived(repo)
    assert segs[2].name not in _markers(work / "pg_wal")
    again = _push(work, segs[2].name, repo)  # asked again: tried again, same answer
    assert again.returncode == 6, again.stderr
    segs[2].write_bytes(good)
    _archiver(work, repo)
    assert archived(repo) == {s.name: (good if s == segs[2] else s.read_bytes()) for s in segs}


def test_markers_count_only_for_their_destination(pg: ThrowawayPostgres, work: Path) -> None:
    segs = segments_of(pg, 4, work / "pg_wal")
    first, second = work / "repo-a", work / "repo-b"
    assert _push(work, segs[0].name, first).returncode == 0
    _wait_gone(work / "pg_wal")
    assert set(archived(first)) == {s.name for s in segs}  # pushed ahead, markers left
    assert _markers(work / "pg_wal") == {s.name for s in segs[1:]}
    (work / "pg_wal" / "archive_status" / f"{segs[0].name}.ready").rename(
        work / "pg_wal" / "archive_status" / f"{segs[0].name}.done"
    )
    # archive_command now names another repository: the markers for the first do not count
    done = _archiver(work, second)
    assert done == [s.name for s in segs[1:]]
    assert archived(second) == {s.name: s.read_bytes() for s in segs[1:]}
    # the same after a change of configuration, with the same command line
    for seg in segs:
        (work / "pg_wal" / "archive_status" / f"{seg.name}.done").rename(
            work / "pg_wal" / "archive_status" / f"{seg.name}.ready"
        )
    third = work / "repo-c"
    assert _push(work, segs[0].name, third).returncode == 0
    _wait_gone(work / "pg_wal")
    assert _markers(work / "pg_wal") == {s.name for s in segs[1:]}
    shutil.rmtree(third)  # so that only a new push can bring them back
    (work / "rfbackup.toml").write_text('env = "development"\n')
    (work / "pg_wal" / "archive_status" / f"{segs[0].name}.ready").rename(
        work / "pg_wal" / "archive_status" / f"{segs[0].name}.done"
    )
    assert _archiver(work, third) == [s.name for s in segs[1:]]
    assert archived(third) == {s.name: s.read_bytes() for s in segs[1:]}


def test_pusher_that_cannot_start_fails_the_call_with_its_reason(
    pg: ThrowawayPostgres, work: Path
) -> None:
    segs = segments_of(pg, 2, work / "pg_wal")
    r = _push(work, segs[0].name, work / "repo", RFBACKUP_PITR__PUSH_BATCH="0")
    assert r.returncode == 3, r.stderr  # ConfigError
    assert "pitr.push_batch" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (work / "repo" / "wal").exists()
    r = _push(work, segs[0].name, work / "repo")  # fixed: the next call starts a new pusher
    assert r.returncode == 0, r.stderr
    _wait_gone(work / "pg_wal")  # it answered at segs[0]; segs[1] follows in the same round
    assert set(archived(work / "repo")) == {s.name for s in segs}
