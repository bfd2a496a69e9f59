"""The replica bucket gets the same Object Lock treatment: copies are locked, prune keeps
them while locked, `check --replica --immutable` verifies them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from conftest import Env
from objectlock_support import all_versions, backup, lock_env, locked_bucket, retention

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def test_replica_copies_are_locked_and_pruned_only_after_their_date(
    env: Env, s3: ThrowawayS3, s3_replica: ThrowawayS3
) -> None:
    primary, dr = locked_bucket(s3), locked_bucket(s3_replica)
    extra = lock_env(
        s3,
        primary,
        RFBACKUP_POSTGRES__KEEP_DAYS="3",
        RFBACKUP_OBJECT_LOCK__MARGIN="P1D",
        RFBACKUP_REPLICA__URL=f"s3://{dr}/dr",
        RFBACKUP_REPLICA__ENDPOINT_URL=s3_replica.endpoint,
        RFBACKUP_REPLICA__REGION=s3_replica.region,
        RFBACKUP_REPLICA__ACCESS_KEY_ID=s3_replica.access_key,
        RFBACKUP_REPLICA__SECRET_ACCESS_KEY=s3_replica.secret_key,
    )
    start = datetime.now(UTC)
    name = backup(env, extra)
    end = datetime.now(UTC)
    copies = [v for v in all_versions(s3_replica, dr) if "/locks/" not in v["Key"]]
    assert len(copies) == 4
    for v in copies:
        got = retention(s3_replica, dr, v["Key"], v["VersionId"])
        assert got is not None and got[0] == "COMPLIANCE", v["Key"]
        assert start + timedelta(days=4, seconds=-1) <= got[1] <= end + timedelta(days=4, seconds=1)

    # Three days later by the plan's clock, nothing is old enough to lapse: both sides keep.
    r = env.run("prune", "--keep-days", "0", "--keep-min", "0", "--json", **extra)
    assert r.returncode == 0, r.stderr
    decisions = json.loads(r.stdout)["decisions"]
    assert {(d["repository"], d["name"], d["action"]) for d in decisions} == {
        (f"s3://{primary}/researchflow", name, "keep"),
        (f"s3://{dr}/dr", name, "keep"),
    }
    assert all(d["reason"].startswith("locked until") for d in decisions)
    assert len([v for v in all_versions(s3_replica, dr) if "/locks/" not in v["Key"]]) == 4

    check = env.run("check", "--replica", "--immutable", "--json", **extra)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["sampled"] == 4
