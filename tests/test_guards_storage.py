"""Second-line guards of the storage backends and the replica check (issue 15)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import Env, new_bucket
from test_s3_operations import replica_env
from test_storage_contract import s3_settings

from rfbackup.errors import StorageError
from rfbackup.sandbox.seaweedfs import ThrowawayS3
from rfbackup.storage import open_repository, put_bytes, read_bytes


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_streamed_commit_never_overwrites_a_key_written_meanwhile(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A streamed write (multipart upload on S3) whose key was written by someone else while
    it ran must fail at commit, and leave the other object and no upload behind."""
    if backend == "local":
        repo = open_repository(str(tmp_path / "repo"))
    else:
        server: ThrowawayS3 = request.getfixturevalue("s3")
        bucket = new_bucket(server)
        repo = open_repository(f"s3://{bucket}/p", s3_settings(server))
    w = repo.writer("k")
    w.write(b"mine, streamed")
    if backend == "local":  # the local writer refuses a second write of the same key
        (tmp_path / "repo" / "k").write_bytes(b"theirs")
    else:
        put_bytes(repo, "k", b"theirs")
    with pytest.raises(StorageError, match="already exists"):
        w.commit()
    assert read_bytes(repo, "k") == b"theirs"
    if backend == "local":
        assert os.listdir(tmp_path / "repo") == ["k"]  # no .k.partial either
    else:
        client = server.client()
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert keys == ["p/k"]
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        body = client.get_object(Bucket=bucket, Key="p/k")["Body"].read()
        assert body == b"theirs"


def test_replica_check_compares_sha256_not_only_sizes(
    env: Env, s3: ThrowawayS3, s3_replica: ThrowawayS3
) -> None:
    """The replica holds another backup under the same name, with the same size and a
    manifest of its own that is consistent with it: only the sha256 comparison tells."""
    primary, dr = new_bucket(s3), new_bucket(s3_replica)
    extra = {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{primary}/rf", **replica_env(s3_replica, dr)}
    r = env.run("backup", "postgres", "--json", **extra)
    assert r.returncode == 0, r.stderr
    name = json.loads(r.stdout)["name"]
    assert env.run("replica", "check", **extra).returncode == 0

    client = s3_replica.client()
    original = client.get_object(Bucket=dr, Key=f"dr/{name}")["Body"].read()
    other = os.urandom(len(original))
    client.put_object(Bucket=dr, Key=f"dr/{name}", Body=other)
    manifest = json.loads(
        client.get_object(Bucket=dr, Key=f"dr/{name}.manifest.json")["Body"].read()
    )
    manifest["data"]["sha256"] = hashlib.sha256(other).hexdigest()
    client.put_object(Bucket=dr, Key=f"dr/{name}.manifest.json", Body=json.dumps(manifest))
    check = env.run("replica", "check", "--json", **extra)
    assert check.returncode == 6, check.stderr
    diffs = json.loads(check.stdout)["differences"]
    assert [(d["name"], d["problem"], d["detail"]) for d in diffs] == [
        (name, "different", "sha256 differs")
    ]

    sync = env.run("replica", "sync", **extra)
    assert sync.returncode == 0, sync.stderr
    repaired = client.get_object(Bucket=dr, Key=f"dr/{name}")["Body"].read()
    assert hashlib.sha256(repaired).hexdigest() == hashlib.sha256(original).hexdigest()
