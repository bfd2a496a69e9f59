"""Object Lock on artifact snapshots (real SeaweedFS): packs a newer snapshot reuses get
their lock extended to outlive it (extend on use), without asking the bucket every run."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from artifacts_support import Repo, keypair, walk, write
from conftest import base_env
from objectlock_support import locked_bucket

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def _locked_repo(tmp: Path, s3: ThrowawayS3) -> Repo:
    cwd = tmp / "work"
    cwd.mkdir()
    public, identity = keypair(tmp)
    locks = tmp / "locks"
    locks.mkdir(mode=0o700)
    bucket = locked_bucket(s3)
    url = f"s3://{bucket}/rf"
    writer = {
        **base_env(cwd),
        **s3.env(),
        "RFBACKUP_REPOSITORY": url,
        "RFBACKUP_ENCRYPTION__RECIPIENTS": public,
        "RFBACKUP_ARTIFACTS__KEY_FILE": str(tmp / "writer.key"),
        "RFBACKUP_LOCKS__DIR": str(locks),
        "RFBACKUP_OBJECT_LOCK__MODE": "compliance",
        "RFBACKUP_OBJECT_LOCK__MARGIN": "PT1H",
        "RFBACKUP_ARTIFACTS__KEEP_DAYS": "0",  # locks of 1 hour (the margin), refresh 6 minutes
    }
    reader = {**writer, "RFBACKUP_ENCRYPTION__IDENTITY_FILE": str(identity)}
    repo = Repo(cwd, writer, reader, url, s3, bucket)
    repo.ok("artifacts", "init", side="writer")
    return repo


def _until(repo: Repo, key: str) -> datetime:
    assert repo.s3 is not None
    head = repo.s3.client().head_object(Bucket=repo.bucket, Key=f"rf/{key}")
    assert head.get("ObjectLockMode") == "COMPLIANCE", key
    until: datetime = head["ObjectLockRetainUntilDate"]
    return until


def _keys(repo: Repo, folder: str) -> set[str]:
    return {k for k in repo.objects() if k.startswith(f"artifacts/{folder}/")}


def test_reused_pack_outlives_the_newer_snapshot(tmp_path: Path, s3: ThrowawayS3) -> None:
    repo = _locked_repo(tmp_path, s3)
    data = tmp_path / "data"
    write(data / "big.bin", os.urandom(300_000))
    first = repo.backup(data)
    # nothing older to reuse; the config and stored key (from init) join the ledger
    assert first["stats"]["locks_extended"] == 1 + len(_keys(repo, "keys"))
    packs1, index1 = _keys(repo, "packs"), _keys(repo, "index")
    before = {k: _until(repo, k) for k in packs1 | index1}

    write(data / "small.txt", b"new in the second snapshot\n")
    second = repo.backup(data)
    (snap2,) = _keys(repo, "snapshots") - {
        k for k in _keys(repo, "snapshots") if k.endswith(first["id"])
    }
    snap_until = _until(repo, snap2)
    for key in packs1 | index1 | {"artifacts/config"}:
        assert _until(repo, key) >= snap_until, key  # the reused objects outlive the snapshot
        if key in before:
            assert _until(repo, key) > before[key]
    assert second["stats"]["locks_extended"] >= len(packs1 | index1)

    # the third run reuses the second run's pack and index: those two are extended; the
    # first run's, extended by the second run with a refresh period to spare, are not
    third = repo.backup(data)
    assert third["stats"]["locks_extended"] == len(
        (_keys(repo, "packs") | _keys(repo, "index")) - (packs1 | index1)
    )
    # right after, with nothing new: the ledger knows every lock is long enough
    fourth = repo.backup(data)
    assert fourth["stats"]["locks_extended"] == 0

    # and the second snapshot restores
    out = tmp_path / "out"
    r = repo.restore(second["id"], out)
    assert r.returncode == 0, r.stderr
    assert walk(out / "data") == walk(data)


def test_ledger_that_lies_is_not_trusted(tmp_path: Path, s3: ThrowawayS3) -> None:
    """A ledger claiming locks the bucket does not hold (forged with the writer key): the run
    finds out by sampling it and asks the bucket for every object instead."""
    import json

    from rfbackup.sources.artifacts.keys import WriterKey

    repo = _locked_repo(tmp_path, s3)
    data = tmp_path / "data"
    write(data / "big.bin", os.urandom(200_000))
    repo.backup(data)
    packs = _keys(repo, "packs")
    key = WriterKey.load(tmp_path / "writer.key")
    claims = {k: 4_000_000_000.0 for k in packs | _keys(repo, "index") | {"artifacts/config"}}
    forged = key.seal("lock-ledger/1", json.dumps(claims).encode())
    repo.write("artifacts/cache/locks/99991231T000000-000000000", forged)

    write(data / "more.txt", b"x\n")
    second = repo.backup(data)
    assert second["stats"]["locks_extended"] >= len(packs)
    (snap2,) = {k for k in _keys(repo, "snapshots") if k.endswith(second["id"])}
    for pack in packs:
        assert _until(repo, pack) >= _until(repo, snap2)
