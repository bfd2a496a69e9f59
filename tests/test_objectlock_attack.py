"""A ransomware run with the backup's own S3 key against a locked bucket: it deletes every
version it can, overwrites every key, deletes every key. Every backup stays restorable:
`rfbackup unhide` brings the locked originals back and the restore matches the data.

Run with ``-s`` to see the transcript (the issue's closing note quotes it)."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError
from conftest import Env, table_checksums
from objectlock_support import all_versions, backup, lock_env, locked_bucket

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def attack(s3: ThrowawayS3, bucket: str) -> dict[str, int]:
    """Everything a stolen key can try, with that key. Returns what the server allowed."""
    client = s3.client()
    tally = {"versions_deleted": 0, "versions_refused": 0, "overwritten": 0, "deleted": 0}
    pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket)
    for page in pages:
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            try:
                client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
                tally["versions_deleted"] += 1
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "AccessDenied"
                tally["versions_refused"] += 1
    keys = sorted({v["Key"] for v in all_versions(s3, bucket)})
    for key in keys:  # encrypt everything: replace each object with garbage
        client.put_object(Bucket=bucket, Key=key, Body=b"ENCRYPTED BY RANSOMWARE")
        tally["overwritten"] += 1
    for key in keys[::2]:  # and hide half of them behind delete markers
        client.delete_object(Bucket=bucket, Key=key)
        tally["deleted"] += 1
    return tally


def test_a_stolen_key_cannot_destroy_locked_backups(env: Env, s3: ThrowawayS3) -> None:
    bucket = locked_bucket(s3)
    extra = lock_env(s3, bucket)
    before = table_checksums(env.pg.dsn(env.dbname))
    first = backup(env, extra)
    env.sql("UPDATE notes SET body = body || ' v2' WHERE id % 7 = 0")
    second = backup(env, extra)
    after_second = table_checksums(env.pg.dsn(env.dbname))

    tally = attack(s3, bucket)
    print(f"\nattacker with the backup key: {json.dumps(tally)}")
    assert tally["versions_refused"] == 8  # 2 backups x (data, manifest, roles, dbprops)
    listed = json.loads(env.run("list", "--json", **extra).stdout)
    print("after the attack, rfbackup list:", [(e["name"], e["status"]) for e in listed])
    assert not any(e["status"] == "ok" for e in listed)

    dry = env.run("unhide", "--dry-run", "--json", **extra)
    assert dry.returncode == 0, dry.stderr
    assert len(json.loads(dry.stdout)["restored"]) == 8
    run = env.run("unhide", **extra)
    print(run.stdout + run.stderr)
    assert run.returncode == 0, run.stderr
    listed = json.loads(env.run("list", "--json", **extra).stdout)
    print("after unhide, rfbackup list:", [(e["name"], e["status"]) for e in listed])
    assert sorted((e["name"], e["status"]) for e in listed) == sorted(
        [(first, "ok"), (second, "ok")]
    )
    assert json.loads(env.run("unhide", "--json", **extra).stdout)["restored"] == []

    for name, expected in ((first, before), (second, after_second)):
        copy = f"{env.dbname}_{name.rsplit('/', 1)[1][:15]}"
        r = env.run("restore", name, "--yes", "--target-db", copy, **extra)
        assert r.returncode == 0, r.stderr
        assert table_checksums(env.pg.dsn(copy)) == expected
        print(f"restored {name} into {copy}: table checksums match")
    # The brought-back copies are locked like the originals.
    check = env.run("check", "--immutable", "--json", **extra)
    assert check.returncode == 0, check.stdout + check.stderr
