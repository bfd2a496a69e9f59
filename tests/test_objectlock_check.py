"""`rfbackup check [--immutable]` and the production rules on real SeaweedFS buckets."""

from __future__ import annotations

import json

from conftest import Env, new_bucket
from objectlock_support import PREFIX, all_versions, backup, lock_env, locked_bucket, retention

from rfbackup.sandbox.seaweedfs import ThrowawayS3

PROD = {"RFBACKUP_ENV": "production", "RFBACKUP_ENCRYPTION__ALLOW_UNENCRYPTED_PRODUCTION": "true"}


def test_check_immutable_passes_on_locked_backups_and_catches_a_planted_object(
    env: Env, s3: ThrowawayS3
) -> None:
    bucket = locked_bucket(s3)
    extra = lock_env(s3, bucket)
    backup(env, extra)
    ok = env.run("check", "--immutable", "--json", **extra)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = json.loads(ok.stdout)
    assert (doc["versioning"], doc["object_lock"], doc["mode"]) == ("Enabled", True, "COMPLIANCE")
    assert doc["sampled"] == doc["objects"] == 4 and doc["findings"] == []

    # Written with the same key but without retention (an old client, a bug, an attacker).
    planted = "postgres/20250101_000000.sql.gz"
    s3.client().put_object(Bucket=bucket, Key=f"{PREFIX}/{planted}", Body=b"not locked")
    bad = env.run("check", "--immutable", "--json", **extra)
    assert bad.returncode == 14, bad.stdout + bad.stderr
    doc = json.loads(bad.stdout)
    assert [(f["key"], f["problem"]) for f in doc["findings"]] == [(planted, "no retention")]
    assert "is not immutable: 1 object(s) without the retention" in bad.stderr
    text = env.run("check", "--immutable", **extra)
    assert text.returncode == 14 and planted in text.stdout

    # Without --immutable, outside production, only the bucket is reported.
    assert env.run("check", **extra).returncode == 0


def test_check_immutable_fails_on_a_bucket_without_object_lock(env: Env, s3: ThrowawayS3) -> None:
    bucket = new_bucket(s3)
    extra = {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{bucket}/{PREFIX}"}
    r = env.run("check", "--immutable", "--json", **extra)
    assert r.returncode == 14
    doc = json.loads(r.stdout)
    assert (doc["versioning"], doc["object_lock"]) == ("Off", False)
    assert "Object Lock is not enabled" in r.stderr


def test_production_unlocked_bucket_warns_on_every_run_and_fails_check(
    env: Env, s3: ThrowawayS3
) -> None:
    bucket = new_bucket(s3)
    extra = {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{bucket}/{PREFIX}", **PROD}
    warning = f"production repository s3://{bucket} has no Object Lock"
    for args in (("backup", "postgres"), ("prune", "--dry-run", "--keep-min", "0")):
        b = env.run(*args, **extra)
        assert b.returncode == 0, b.stderr
        assert warning in b.stderr, args
    r = env.run("check", **extra)
    assert r.returncode == 14
    assert "Object Lock is not enabled" in r.stderr
    # Not production: no warning, and check reports without failing.
    dev = {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{bucket}/{PREFIX}"}
    b = env.run("prune", "--dry-run", "--keep-min", "0", **dev)
    assert b.returncode == 0 and "Object Lock" not in b.stderr
    assert env.run("check", **dev).returncode == 0


def test_production_defaults_to_governance_on_a_locked_bucket(env: Env, s3: ThrowawayS3) -> None:
    bucket = locked_bucket(s3)
    extra = {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{bucket}/{PREFIX}", **PROD}
    backup(env, extra)
    modes = {
        retention(s3, bucket, v["Key"], v["VersionId"])[0]  # type: ignore[index]
        for v in all_versions(s3, bucket)
        if "/locks/" not in v["Key"]
    }
    assert modes == {"GOVERNANCE"}
    r = env.run("check", "--immutable", **extra)
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_explicit_mode_on_an_unlocked_bucket_is_refused_before_any_write(
    env: Env, s3: ThrowawayS3
) -> None:
    bucket = new_bucket(s3)
    extra = lock_env(s3, bucket)
    b = env.run("backup", "postgres", **extra)
    assert b.returncode == 3, b.stderr
    assert "object_lock.mode is compliance but" in b.stderr
    assert s3.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0
