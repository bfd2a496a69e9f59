"""Prune on a locked bucket: nothing locked is deleted (exit 0, "locked until ..."), and once
the locks end (keep 0 days, margin of seconds) the backup goes with all its versions."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Env
from objectlock_support import PREFIX, all_versions, backup, lock_env, locked_bucket

from rfbackup.catalog import Entry
from rfbackup.prune_locks import delete_backup
from rfbackup.retention import Decision
from rfbackup.sandbox.seaweedfs import ThrowawayS3
from rfbackup.storage import open_repository
from rfbackup.storage.objectlock import LockedObjects, LockPolicy
from rfbackup.storage.s3 import S3Settings

MARGIN = 12  # seconds


def _ours(s3: ThrowawayS3, bucket: str) -> list[str]:
    return sorted(v["Key"] for v in all_versions(s3, bucket) if "/locks/" not in v["Key"])


def test_prune_keeps_locked_backups_then_deletes_them_after_the_date(
    env: Env, s3: ThrowawayS3
) -> None:
    """Two backups, both past keep-days 0: the first written with a 10-minute margin (still
    locked), the second with 2 seconds (lock over by the time prune runs). One prune run
    keeps the first, "locked until", and deletes every version of the second. Whatever the
    machine's load, neither outcome depends on how long the steps take."""
    bucket = locked_bucket(s3)
    extra = lock_env(s3, bucket, RFBACKUP_POSTGRES__KEEP_DAYS="0")
    start = datetime.now(UTC)
    locked = backup(env, {**extra, "RFBACKUP_OBJECT_LOCK__MARGIN": "PT10M"})
    first = _ours(s3, bucket)
    assert len(first) == 4
    lapsed = backup(env, {**extra, "RFBACKUP_OBJECT_LOCK__MARGIN": "PT2S"})
    time.sleep(2.5)  # the second backup's locks are over

    dry = env.run("prune", "--dry-run", "--keep-min", "0", **extra)
    assert dry.returncode == 0, dry.stderr
    assert "keep: locked until" in dry.stdout + dry.stderr
    assert "1 would be deleted, 1 kept (1 locked by Object Lock)" in dry.stderr
    assert len(_ours(s3, bucket)) == 8

    run = env.run("prune", "--keep-min", "0", "--json", **extra)
    assert run.returncode == 0, run.stderr
    decisions = {d["name"]: d for d in json.loads(run.stdout)["decisions"]}
    assert (decisions[lapsed]["action"], decisions[lapsed]["locked_until"]) == ("delete", None)
    kept = decisions[locked]
    assert kept["action"] == "keep" and kept["reason"].startswith("locked until ")
    until = datetime.fromisoformat(kept["locked_until"])
    assert start + timedelta(minutes=10, seconds=-1) <= until <= start + timedelta(minutes=11)
    assert _ours(s3, bucket) == first  # every version of the second, nothing of the first
    listed = json.loads(env.run("list", "--json", **extra).stdout)
    assert [e["name"] for e in listed] == [locked]


@pytest.mark.parametrize("mode", ["COMPLIANCE", "GOVERNANCE"])
def test_a_refused_delete_keeps_the_backup_and_is_reported(s3: ThrowawayS3, mode: str) -> None:
    """A lock prune did not plan for (another writer's, a race): the server's AccessDenied
    keeps the backup, and is not an error of the run. Governance is never bypassed."""
    bucket = locked_bucket(s3)
    key = "postgres/20250101_000000.sql.gz"
    until = datetime.now(UTC) + timedelta(hours=1)
    client = s3.client()
    client.put_object(
        Bucket=bucket,
        Key=f"{PREFIX}/{key}",
        Body=b"x",
        ObjectLockMode=mode,
        ObjectLockRetainUntilDate=until,
    )
    settings = S3Settings(s3.endpoint, s3.region, s3.access_key, s3.secret_key)
    repo = open_repository(f"s3://{bucket}/{PREFIX}", settings, LockPolicy("compliance"))
    with pytest.raises(LockedObjects) as caught:
        repo.delete([key])
    assert caught.value.keys == [key]
    entry = Entry(key, "postgres", None, datetime(2025, 1, 1, tzinfo=UTC), 1, "no-manifest")
    kept = delete_backup(repo, Decision(entry, True, "older than 0 days"))
    assert not kept.delete and kept.reason.startswith("locked: the server refused")
    assert [v["Key"] for v in all_versions(s3, bucket)] == [f"{PREFIX}/{key}"]


def test_a_backup_kept_past_its_keep_days_has_its_lock_extended(env: Env, s3: ThrowawayS3) -> None:
    """keep-min keeps the newest backup beyond its keep-days: prune lengthens its locks (to
    now + 2 x margin) so it never lies unlocked while it is one of the last ones."""
    bucket = locked_bucket(s3)
    extra = lock_env(
        s3, bucket, RFBACKUP_POSTGRES__KEEP_DAYS="0", RFBACKUP_OBJECT_LOCK__MARGIN=f"PT{MARGIN}S"
    )
    backup(env, extra)
    client = s3.client()
    before = {
        v["Key"]: client.head_object(Bucket=bucket, Key=v["Key"])["ObjectLockRetainUntilDate"]
        for v in all_versions(s3, bucket)
        if "/locks/" not in v["Key"]
    }
    pruned_at = datetime.now(UTC)
    run = env.run("prune", "--keep-min", "1", "--json", **extra)
    assert run.returncode == 0, run.stderr
    [d] = json.loads(run.stdout)["decisions"]
    assert d["action"] == "keep" and d["reason"].startswith("one of the newest")
    for key, old in before.items():
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        new = head["ObjectLockRetainUntilDate"]
        assert new > old and new >= pruned_at + timedelta(seconds=2 * MARGIN - 1), key
