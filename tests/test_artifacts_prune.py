"""Prune: retention, mark and sweep, repack; referenced data is never deleted; an interrupted
backup leaves a repository that checks clean."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from artifacts_support import Repo, make_repo, walk, write

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def pack_bytes(repo: Repo) -> int:
    return sum(v for k, v in repo.objects().items() if "/packs/" in k)


def prune_cycle(repo: Repo, tmp_path: Path) -> None:
    src = tmp_path / "vol"
    write(src / "keep.bin", os.urandom(1024 * 1024))
    write(src / "old-only.bin", os.urandom(3 * 1024 * 1024))
    first = repo.backup(src)["id"]
    (src / "old-only.bin").unlink()
    write(src / "second.bin", os.urandom(512 * 1024))
    second = repo.backup(src)["id"]
    reference = {second: walk(src)}
    write(src / "third.txt", b"third\n")
    third = repo.backup(src)["id"]
    reference[third] = walk(src)

    before = repo.objects()
    dry = json.loads(repo.ok("artifacts", "prune", "--dry-run", "--keep-days", "0",
                             "--keep-min", "2", "--json"))  # fmt: skip
    assert dry["forgotten"] == [first] and dry["dry_run"]
    assert repo.objects() == before

    size = pack_bytes(repo)
    out = json.loads(repo.ok("artifacts", "prune", "--keep-days", "0", "--keep-min", "2", "--json"))
    assert out["forgotten"] == [first]
    assert size - pack_bytes(repo) >= 3 * 1024 * 1024  # old-only.bin is gone
    assert repo.run("artifacts", "check", "--read-data-subset", "100%").returncode == 0
    for snap in (second, third):
        dest = tmp_path / f"after-{snap}"
        r = repo.restore(snap, dest)
        assert r.returncode == 0, r.stderr
        assert walk(dest / "vol") == reference[snap]
    listed = [s["id"] for s in json.loads(repo.ok("artifacts", "list", "--json"))]
    assert sorted(listed) == sorted([second, third])


def test_prune_local(tmp_path: Path) -> None:
    prune_cycle(make_repo(tmp_path, RFBACKUP_ARTIFACTS__PACK_SIZE_MB="1"), tmp_path)


def test_prune_s3(tmp_path: Path, s3: ThrowawayS3) -> None:
    prune_cycle(make_repo(tmp_path, s3, RFBACKUP_ARTIFACTS__PACK_SIZE_MB="1"), tmp_path)


def test_kill_mid_backup_then_check_clean_and_next_backup(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, RFBACKUP_ARTIFACTS__PACK_SIZE_MB="1",
                     RFBACKUP_ARTIFACTS__PRUNE_GRACE_HOURS="0")  # fmt: skip
    src = tmp_path / "vol"
    for i in range(40):
        write(src / f"{i}.bin", os.urandom(1024 * 1024))
    import subprocess

    from conftest import RFBACKUP

    proc = subprocess.Popen([*RFBACKUP, "backup", "artifacts", str(src)], cwd=repo.cwd,
                            env=repo.writer, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    # a stored pack, not the hidden partial of one still being written (under load the kill
    # could land before the first pack was renamed into place)
    while not any("/packs/" in k and not k.endswith(".partial") for k in repo.objects()):
        assert proc.poll() is None and time.monotonic() < deadline, "finished before the kill"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads(repo.ok("artifacts", "list", "--json")) == []  # no snapshot: no backup
    r = repo.run("artifacts", "check", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["unindexed_packs"] >= 1
    snap = repo.backup(src)["id"]
    out = json.loads(repo.ok("artifacts", "prune", "--json"))
    assert out["unindexed_packs_deleted"] >= 1
    assert repo.run("artifacts", "check", "--read-data-subset", "100%").returncode == 0
    r = repo.restore(snap, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert walk(tmp_path / "out" / "vol") == walk(src)


@pytest.mark.parametrize("share", ["0%", "150%", "abc"])
def test_bad_subset_is_a_usage_error(tmp_path: Path, share: str) -> None:
    repo = make_repo(tmp_path)
    r = repo.run("artifacts", "check", "--read-data-subset", share)
    assert r.returncode == 3 and "5%" in r.stderr


def test_backup_and_prune_exclude_each_other(tmp_path: Path) -> None:
    """Backup and prune share the repository lease of the artifacts component: while one
    holds it (here this test, as a running backup would), the other exits 5 and changes
    nothing; afterwards both run and the snapshot restores completely."""
    from rfbackup.config import LockOptions
    from rfbackup.engine.locks import component_job
    from rfbackup.storage.local import LocalRepository

    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    write(src / "old.bin", os.urandom(1024 * 1024))
    repo.backup(src)
    (src / "old.bin").unlink()
    write(src / "new.bin", os.urandom(1024 * 1024))
    before = repo.objects()
    locks = LockOptions(dir=Path(repo.writer["RFBACKUP_LOCKS__DIR"]))
    with component_job(LocalRepository(Path(repo.url)), "artifacts", locks):
        r = repo.run("artifacts", "prune", "--keep-days", "0", "--keep-min", "0")
        assert r.returncode == 5, r.stderr
        r = repo.run("backup", "artifacts", str(src), side="writer")
        assert r.returncode == 5, r.stderr
        assert {k for k in repo.objects() if "locks/" not in k} == set(before)
    snap = repo.backup(src)["id"]
    repo.ok("artifacts", "prune", "--keep-days", "0", "--keep-min", "1")
    dest = tmp_path / "out"
    assert repo.restore(snap, dest).returncode == 0
    assert walk(dest / "vol") == walk(src)
