"""DR scenario 3, a whole region lost: the replica alone holds everything a point-in-time
recovery needs (base backups and WAL), and `replica check` sees every component."""

from __future__ import annotations

import json

from conftest import new_bucket
from pitr_support import archiving_cluster
from test_pitr import accident, recover

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def replica_env(s3_replica: ThrowawayS3, bucket: str) -> dict[str, str]:
    return {
        "RFBACKUP_REPLICA__URL": f"s3://{bucket}/rf",
        "RFBACKUP_REPLICA__ENDPOINT_URL": s3_replica.endpoint,
        "RFBACKUP_REPLICA__ACCESS_KEY_ID": s3_replica.access_key,
        "RFBACKUP_REPLICA__SECRET_ACCESS_KEY": s3_replica.secret_key,
    }


def drop_bucket(s3: ThrowawayS3, bucket: str) -> None:
    client = s3.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


def test_pitr_from_the_replica_after_the_primary_bucket_is_gone(
    s3: ThrowawayS3, s3_replica: ThrowawayS3
) -> None:
    primary, dr = new_bucket(s3), new_bucket(s3_replica)
    extra = replica_env(s3_replica, dr)
    # wal-push runs in PostgreSQL's environment: the replica is configured there too
    with archiving_cluster(f"s3://{primary}/rf", **s3.env(), **extra) as cluster:
        b = cluster.run("backup", "base", "--json")
        assert b.returncode == 0, b.stderr
        name = json.loads(b.stdout)["name"]
        dr_keys = [o["Key"] for o in s3_replica.client().list_objects_v2(Bucket=dr)["Contents"]]
        assert f"rf/{name}" in dr_keys and f"rf/{name}.manifest.json" in dr_keys

        target = accident(cluster)  # its WAL reaches the replica within wal-push itself
        check = cluster.run("replica", "check", "--json", "--deep")
        assert check.returncode == 0, check.stdout + check.stderr
        assert json.loads(check.stdout)["ok"] is True

        # a WAL file lost on the replica is seen, and `replica sync` puts it back
        client = s3_replica.client()
        wal = sorted(
            o["Key"]
            for o in client.list_objects_v2(Bucket=dr, Prefix="rf/wal/")["Contents"]
            if not o["Key"].endswith("archive.json")
        )
        client.delete_object(Bucket=dr, Key=wal[-1])
        check = cluster.run("replica", "check", "--json")
        assert check.returncode == 6, check.stderr
        missing = json.loads(check.stdout)["differences"]
        assert [d["name"] for d in missing] == [wal[-1].removeprefix("rf/")]
        sync = cluster.run("replica", "sync")
        assert sync.returncode == 0, sync.stderr
        assert cluster.run("replica", "check").returncode == 0

        drop_bucket(s3, primary)  # the region is gone
        outcome, port = recover(
            cluster,
            "--target-time",
            target,
            **s3_replica.env(),
            RFBACKUP_REPOSITORY=f"s3://{dr}/rf",
        )
        assert outcome["promoted"] is True
        assert cluster.sql("SELECT count(*), max(id) FROM items", port) == "200|200"
