"""``rfbackup drill --component redis`` on real redis-server processes and a real S3 server:
passes on a healthy snapshot (while production moves on), fails on a snapshot whose manifest
key count was edited, and leaves no scratch redis-server or folder behind."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RFBACKUP, base_env, new_bucket
from redis_support import fill

from rfbackup.sandbox.redis import ThrowawayRedis
from rfbackup.sandbox.seaweedfs import ThrowawayS3

PASSWORD = "drill-redis-secret-pw"


@pytest.fixture
def source() -> Iterator[ThrowawayRedis]:
    with ThrowawayRedis(password=PASSWORD) as r:
        fill(r, dbs=range(3), per_db=10)
        yield r


@pytest.fixture
def env(s3: ThrowawayS3, tmp_path: Path, source: ThrowawayRedis) -> dict[str, str]:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return {
        **base_env(tmp_path),
        **s3.env(),
        "RFBACKUP_REPOSITORY": f"s3://{new_bucket(s3)}/rf",
        "RFBACKUP_LOCKS__DIR": str(tmp_path / "locks"),
        "RFBACKUP_BACKUP_DIR": str(tmp_path / "backups"),
        "RFBACKUP_TMP_DIR": str(scratch),
        "TMPDIR": str(scratch),
        "REDIS_URL": f"redis://127.0.0.1:{source.port}",
        "REDIS_PASSWORD": PASSWORD,
    }


def rf(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RFBACKUP, *args], env=env, capture_output=True, text=True, timeout=60)


def drill(env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    r = rf(env, "drill", "--component", "redis", "--json")
    doc = json.loads(r.stdout) if r.stdout.strip() else {}
    return r.returncode, doc, r.stderr


def redis_servers(scratch: Path) -> set[str]:
    """The redis-servers the drill started under ``scratch`` (their redis.conf and data folder
    live there), still running. Servers of other tests and xdist workers don't count."""
    out = subprocess.run(["pgrep", "-a", "redis-server"], capture_output=True, text=True).stdout
    mine = set()
    for line in out.splitlines():
        pid = line.split(maxsplit=1)[0]
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""  # gone meanwhile
        if str(scratch) in line or cwd.startswith(str(scratch)):
            mine.add(line)
    return mine


def test_healthy_snapshot_passes_and_leaves_nothing(
    env: dict[str, str], source: ThrowawayRedis, tmp_path: Path
) -> None:
    r = rf(env, "backup", "redis", "--json")
    assert r.returncode == 0, r.stderr
    name = json.loads(r.stdout)["name"]
    source.client(db=1).set("user:moved-on", "after the snapshot")  # production moves on
    code, doc, err = drill(env)

    assert code == 0, err
    (c,) = doc["components"]
    assert c["component"] == "redis" and c["status"] == "passed", c
    assert c["backup"] == name and c["rto_seconds"] > 0 and c["rpo_seconds"] >= 0
    assert c["facts"]["dbsize"] == c["facts"]["manifest_keys"]
    assert sum(c["facts"]["dbsize"].values()) > 0
    sampled = c["facts"]["sampled_keys"]
    assert sampled["compared"] > 0 and sampled["same"] == sampled["compared"]
    assert redis_servers(tmp_path / "scratch") == set()  # the scratch server is gone
    assert list((tmp_path / "scratch").iterdir()) == []
    assert PASSWORD not in json.dumps(doc) + err


def test_edited_key_count_fails(
    env: dict[str, str], source: ThrowawayRedis, s3: ThrowawayS3, tmp_path: Path
) -> None:
    r = rf(env, "backup", "redis", "--json")
    assert r.returncode == 0, r.stderr
    name = json.loads(r.stdout)["name"]
    # A snapshot whose manifest claims one key more than it holds, edited in the bucket.
    bucket, prefix = env["RFBACKUP_REPOSITORY"][5:].split("/", 1)
    client = s3.client()
    key = f"{prefix}/{name}.manifest.json"
    doc = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    doc["source"]["keys"]["0"] += 1
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode())
    code, out, _err = drill(env)

    assert code != 0
    (c,) = out["components"]
    assert c["status"] == "failed", c
    assert any(i.startswith("key counts") for i in c["issues"]), c["issues"]
    assert redis_servers(tmp_path / "scratch") == set()
    assert list((tmp_path / "scratch").iterdir()) == []


def test_no_redis_server_binary_says_why(env: dict[str, str]) -> None:
    assert rf(env, "backup", "redis").returncode == 0
    env = {**env, "PATH": "/nonexistent"}  # no redis-server on this host

    code, doc, _err = drill(env)  # asked for by --component: not run is a failure

    assert code != 0, doc
    (c,) = doc["components"]
    assert "no redis-server binary" in c["issues"][0], c["issues"]
