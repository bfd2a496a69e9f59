"""Replica, fallback, outages and downloads against real S3 servers (SeaweedFS)."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import Env, new_bucket, table_checksums
from test_backup_faults import argv_logging_bin, shim_bin
from test_s3_backups import keypair

from rfbackup.sandbox.seaweedfs import ThrowawayS3


@contextmanager
def dead_endpoint() -> Iterator[str]:
    """An address where nothing answers: a port held bound but not listening, so connections
    are refused and no other process can take the port while the test runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def objects(server: ThrowawayS3, bucket: str) -> dict[str, str]:
    """Every object in the bucket with the sha256 of its bytes, read with boto3."""
    client: Any = server.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            found[obj["Key"]] = hashlib.sha256(body).hexdigest()
    return found


def same_backups(primary: dict[str, str], replica: dict[str, str]) -> bool:
    """The replica (prefix dr/) holds exactly the primary's (prefix rf/) objects and bytes."""
    return {k.removeprefix("rf/"): v for k, v in primary.items()} == {
        k.removeprefix("dr/"): v for k, v in replica.items()
    }


def replica_env(replica: ThrowawayS3, bucket: str) -> dict[str, str]:
    return {
        "RFBACKUP_REPLICA__URL": f"s3://{bucket}/dr",
        "RFBACKUP_REPLICA__ENDPOINT_URL": replica.endpoint,
        "RFBACKUP_REPLICA__REGION": replica.region,
        "RFBACKUP_REPLICA__ACCESS_KEY_ID": replica.access_key,
        "RFBACKUP_REPLICA__SECRET_ACCESS_KEY": replica.secret_key,
    }


def test_replica_receives_every_backup_and_repairs(
    env: Env, s3: ThrowawayS3, s3_replica: ThrowawayS3
) -> None:
    primary, dr = new_bucket(s3), new_bucket(s3_replica)
    extra = {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{primary}/rf", **replica_env(s3_replica, dr)}
    names = []
    for _ in range(2):
        r = env.run("backup", "postgres", "--json", **extra)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["replicated_to"] == f"s3://{dr}/dr"
        names.append(doc["name"])
    assert len(objects(s3, primary)) == 8  # data, roles, properties and manifest of each
    assert same_backups(objects(s3, primary), objects(s3_replica, dr))
    check = env.run("replica", "check", "--json", **extra)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["checked"] == 2 and json.loads(check.stdout)["ok"]

    # The replica loses one data object: detected, then repaired.
    s3_replica.client().delete_object(Bucket=dr, Key=f"dr/{names[0]}")
    damaged = objects(s3_replica, dr)
    check = env.run("replica", "check", "--json", **extra)
    assert check.returncode == 6
    diffs = json.loads(check.stdout)["differences"]
    assert [(d["name"], d["problem"]) for d in diffs] == [(names[0], "missing")]
    dry = env.run("replica", "sync", "--dry-run", "--json", **extra)
    assert dry.returncode == 0, dry.stderr
    assert [(c["name"], c["problem"]) for c in json.loads(dry.stdout)["copied"]] == [
        (names[0], "missing")
    ]
    assert objects(s3_replica, dr) == damaged  # a dry run copies nothing
    sync = env.run("replica", "sync", **extra)
    assert sync.returncode == 0, sync.stderr
    assert same_backups(objects(s3, primary), objects(s3_replica, dr))
    # What the replica holds restores, byte for byte the same data.
    r = env.run(
        "restore",
        f"s3://{dr}/dr/{names[0]}",
        "--yes",
        "--target-db",
        f"{env.dbname}_dr",
        **{**extra, **s3_replica.env()},
    )
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(f"{env.dbname}_dr")) == table_checksums(
        env.pg.dsn(env.dbname)
    )


def test_replica_failure_fails_the_run_but_keeps_the_primary(env: Env, s3: ThrowawayS3) -> None:
    primary = new_bucket(s3)
    with dead_endpoint() as dead:
        extra = {
            **s3.env(),
            "RFBACKUP_REPOSITORY": f"s3://{primary}/rf",
            "RFBACKUP_REPLICA__URL": "s3://nowhere/dr",
            "RFBACKUP_REPLICA__ENDPOINT_URL": dead,
            "RFBACKUP_REPLICA__MAX_ATTEMPTS": "1",
        }
        r = env.run("backup", "postgres", "--json", **extra)
        assert r.returncode == 8
        assert "copying it to the replica" in r.stderr and "failed" in r.stderr
        listed = json.loads(env.run("list", "--json", **extra).stdout)
        assert [e["status"] for e in listed] == ["ok"]
        first = listed[0]["name"]
        r = env.run("backup", "postgres", RFBACKUP_REPLICA__REQUIRED="false", **extra)
        assert r.returncode == 0, r.stderr
        assert "copying it to the replica" in r.stderr  # a warning now
    stored = sorted(k.removeprefix("rf/") for k in objects(s3, primary))
    assert first in stored and len(stored) == 8  # both backups kept in the primary


def test_staging_fallback_when_primary_is_down(env: Env, s3: ThrowawayS3) -> None:
    bucket = new_bucket(s3)
    with dead_endpoint() as dead:
        down = {
            **s3.env(),
            "RFBACKUP_ENV": "staging",
            "RFBACKUP_REPOSITORY": f"s3://{bucket}/rf",
            "AWS_ENDPOINT_URL": dead,
            "RFBACKUP_S3__MAX_ATTEMPTS": "1",
        }
        r = env.run("backup", "postgres", "--json", **down)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["pending_upload"] is True and doc["repository"] == "backups"
    assert (env.backups / doc["name"]).exists()
    assert (env.backups / f"{doc['name']}.manifest.json").exists()

    up = {**down, "AWS_ENDPOINT_URL": s3.endpoint}
    r = env.run("backup", "postgres", "--json", **up)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pending_upload"] is False
    listed = {e["name"]: e["status"] for e in json.loads(env.run("list", "--json", **up).stdout)}
    assert listed == {doc["name"]: "ok", json.loads(r.stdout)["name"]: "ok"}
    assert not (env.backups / doc["name"]).exists()  # moved, not copied twice


def test_s3_killed_mid_upload(big_env: Env, tmp_path: Path) -> None:
    env = big_env
    with ThrowawayS3() as server:
        bucket = new_bucket(server)
        extra = {
            **server.env(),
            "RFBACKUP_REPOSITORY": f"s3://{bucket}/rf",
            "RFBACKUP_S3__PART_SIZE_MB": "5",
            "RFBACKUP_S3__MAX_ATTEMPTS": "2",
            "RFBACKUP_PG_BIN": str(shim_bin(tmp_path, "sleep 2")),
        }
        proc = env.popen("backup", "postgres", **extra)
        client = server.client()
        deadline = time.monotonic() + 60
        while not client.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        server.kill()
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 8, err
        assert "S3" in err

        server.start()
        del extra["RFBACKUP_PG_BIN"]
        client = server.client()
        (upload,) = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
        # Only the lease of the failed run is left (S3 was down when it tried to delete it):
        # it names a process that is gone, so it is stale at once (docs/security.md).
        objects = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert objects == ["rf/locks/postgres.lease"]
        listed = json.loads(env.run("list", "--json", **extra).stdout)
        stale = upload["Key"].removeprefix("rf/")
        assert [(e["name"], e["status"]) for e in listed] == [(stale, "abandoned")]
        r = env.run("backup", "postgres", **extra)  # cleans up the abandoned upload
        assert r.returncode == 0, r.stderr
        assert "left by an interrupted run" in r.stderr
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert [e["status"] for e in json.loads(env.run("list", "--json", **extra).stdout)] == [
            "ok"
        ]
        assert "breaking the stale lease" in r.stderr
        objects = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert not [k for k in objects if k.startswith("rf/locks/")]  # released at the end


def test_get_downloads_a_restorable_copy_and_no_secret_leaks(
    env: Env, s3: ThrowawayS3, tmp_path: Path
) -> None:
    public, identity = keypair(tmp_path)
    bucket = new_bucket(s3)
    extra = {
        **s3.env(),
        "RFBACKUP_REPOSITORY": f"s3://{bucket}/rf",
        "RFBACKUP_ENCRYPTION__RECIPIENTS": public,
        "RFBACKUP_ENCRYPTION__IDENTITY_FILE": str(identity),
    }
    secrets = [s3.secret_key, identity.read_text().split("AGE-SECRET-KEY-")[1][:20]]
    bindir, argv_log = argv_logging_bin(tmp_path)
    extra["RFBACKUP_PG_BIN"] = str(bindir)
    b = env.run("backup", "postgres", **extra)
    assert b.returncode == 0, b.stderr
    name = b.stdout.strip()
    g = env.run("get", name, str(tmp_path / "dl"), **extra)
    assert g.returncode == 0, g.stderr
    local = Path(g.stdout.strip())
    r = env.run(
        "restore",
        str(local),
        "--yes",
        "--target-db",
        f"{env.dbname}_dl",
        "--jobs",
        "1",
        **extra,
    )
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(f"{env.dbname}_dl")) == table_checksums(
        env.pg.dsn(env.dbname)
    )
    argvs = argv_log.read_text().splitlines()
    assert any(a.startswith("pg_dump ") for a in argvs) and any(
        a.startswith("psql ") for a in argvs
    ), argvs
    texts = [env.log_file.read_text(), *(p.read_text() for p in (tmp_path / "dl").glob("*.json"))]
    texts += [b.stderr, g.stderr, r.stderr, *argvs]
    for sec in secrets:
        assert [t for t in texts if sec in t] == []


def test_prune_applies_per_repository(env: Env, s3: ThrowawayS3, s3_replica: ThrowawayS3) -> None:
    primary, dr = new_bucket(s3), new_bucket(s3_replica)
    extra = {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{primary}/rf", **replica_env(s3_replica, dr)}
    names = []
    for _ in range(3):
        r = env.run("backup", "postgres", "--json", **extra)
        assert r.returncode == 0, r.stderr
        names.append(json.loads(r.stdout)["name"])
    stored = (objects(s3, primary), objects(s3_replica, dr))
    dry = env.run("prune", "--keep-days", "0", "--keep-min", "1", "--dry-run", "--json", **extra)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["dry_run"] is True
    assert (objects(s3, primary), objects(s3_replica, dr)) == stored  # nothing deleted
    plan = json.loads(dry.stdout)["decisions"]
    assert {(d["repository"], d["name"], d["action"]) for d in plan} == {
        (url, n, "keep" if n == names[-1] else "delete")
        for url in (f"s3://{primary}/rf", f"s3://{dr}/dr")
        for n in names
    }
    r = env.run("prune", "--keep-days", "0", "--keep-min", "1", **extra)
    assert r.returncode == 0, r.stderr
    stem = names[-1].removesuffix(".sql.gz")
    kept = {names[-1], f"{names[-1]}.manifest.json", f"{stem}.roles.gz", f"{stem}.dbprops.json"}
    for server, bucket, prefix in ((s3, primary, "rf/"), (s3_replica, dr, "dr/")):
        assert set(objects(server, bucket)) == {prefix + k for k in kept}
