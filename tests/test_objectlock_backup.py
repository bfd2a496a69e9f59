"""Object Lock on a real SeaweedFS bucket: every object of a backup is locked in COMPLIANCE
mode to creation + keep-days + margin, and the backup's own credentials cannot delete it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError
from conftest import Env
from objectlock_support import PREFIX, all_versions, backup, lock_env, locked_bucket, retention

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def test_every_object_of_a_backup_is_locked_to_the_expected_date(env: Env, s3: ThrowawayS3) -> None:
    bucket = locked_bucket(s3)
    extra = lock_env(
        s3, bucket, RFBACKUP_POSTGRES__KEEP_DAYS="30", RFBACKUP_OBJECT_LOCK__MARGIN="P2D"
    )
    start = datetime.now(UTC)
    name = backup(env, extra)
    end = datetime.now(UTC)
    stem = name.removesuffix(".sql.gz")
    versions = all_versions(s3, bucket)
    keys = sorted(v["Key"] for v in versions if not v["Key"].startswith(f"{PREFIX}/locks/"))
    assert keys == sorted(
        f"{PREFIX}/{k}"
        for k in (name, f"{name}.manifest.json", f"{stem}.roles.gz", f"{stem}.dbprops.json")
    )
    want = timedelta(days=32)
    for v in versions:
        if v["Key"].startswith(f"{PREFIX}/locks/"):
            # The lease is rewritten and removed: never locked.
            assert retention(s3, bucket, v["Key"], v["VersionId"]) is None
            continue
        lock = retention(s3, bucket, v["Key"], v["VersionId"])
        assert lock is not None, v["Key"]
        mode, until = lock
        assert mode == "COMPLIANCE"
        # Second precision on the server: allow one second either side.
        assert start + want - timedelta(seconds=1) <= until <= end + want + timedelta(seconds=1)


def test_the_backup_credentials_cannot_delete_a_locked_version(env: Env, s3: ThrowawayS3) -> None:
    bucket = locked_bucket(s3)
    extra = lock_env(s3, bucket)
    name = backup(env, extra)
    client = s3.client()  # the very key the backup ran with
    ours = [v for v in all_versions(s3, bucket) if not v["Key"].startswith(f"{PREFIX}/locks/")]
    for v in ours:
        try:
            client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDenied"
        else:
            raise AssertionError(f"deleted locked version of {v['Key']}")
    resp = client.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in ours]},
    )
    assert {e["Code"] for e in resp["Errors"]} == {"AccessDenied"}
    assert len(resp["Errors"]) == len(ours)
    # Shortening a COMPLIANCE lock is refused too.
    try:
        client.put_object_retention(
            Bucket=bucket,
            Key=f"{PREFIX}/{name}",
            Retention={
                "Mode": "COMPLIANCE",
                "RetainUntilDate": datetime.now(UTC) + timedelta(hours=1),
            },
        )
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied"
    else:
        raise AssertionError("shortened a COMPLIANCE lock")
    assert {(v["Key"], v["VersionId"]) for v in all_versions(s3, bucket)} >= {
        (v["Key"], v["VersionId"]) for v in ours
    }
    listed = env.run("list", "--json", **extra)
    assert '"status": "ok"' in listed.stdout
