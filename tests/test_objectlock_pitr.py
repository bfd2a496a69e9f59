"""Base backups and WAL pushed by the archiver into a locked bucket carry the PITR
retention; `pitr prune` keeps what is locked, with the date, and exits 0."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from objectlock_support import PREFIX, all_versions, locked_bucket, retention
from pitr_support import archiving_cluster

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def test_base_backups_and_wal_are_locked_and_prune_waits(s3: ThrowawayS3) -> None:
    bucket = locked_bucket(s3)
    lock = {
        "RFBACKUP_OBJECT_LOCK__MODE": "compliance",
        "RFBACKUP_OBJECT_LOCK__MARGIN": "P1D",
        "RFBACKUP_PITR__KEEP_DAYS": "5",
    }
    start = datetime.now(UTC)
    with archiving_cluster(f"s3://{bucket}/{PREFIX}", **s3.env(), **lock) as cluster:
        cluster.sql("CREATE TABLE t (i int)")
        for _ in range(2):
            b = cluster.run("backup", "base", "--json")
            assert b.returncode == 0, b.stderr
            cluster.switch_and_wait()
        end = datetime.now(UTC)
        versions = [v for v in all_versions(s3, bucket) if "/locks/" not in v["Key"]]
        folders = {v["Key"].split("/")[1] for v in versions}
        assert folders == {"base", "wal"}
        want = timedelta(days=6)
        for v in versions:
            got = retention(s3, bucket, v["Key"], v["VersionId"])
            assert got is not None, v["Key"]
            mode, until = got
            assert mode == "COMPLIANCE"
            assert start + want - timedelta(seconds=1) <= until <= end + want + timedelta(seconds=1)

        r = cluster.run("pitr", "prune", "--keep-days", "0", "--keep-min", "1", "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        actions = sorted((d["action"], d["reason"][:13]) for d in doc["base_backups"])
        assert actions == [("keep", "locked until "), ("keep", "one of the ne")]
        assert doc["wal_deleted"] == [] and doc["wal_locked"] > 0
        after = [v for v in all_versions(s3, bucket) if "/locks/" not in v["Key"]]
        assert len(after) == len(versions)
        text = cluster.run("pitr", "prune", "--keep-days", "0", "--keep-min", "1", "--dry-run")
        assert "keep: locked until" in text.stdout and "older kept, locked until" in text.stdout
