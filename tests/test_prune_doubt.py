"""Never delete on doubt: what prune could not read stays, and prune says so.

The S3 cases run through a fault-injecting proxy in front of a real SeaweedFS server; what
is left is checked with boto3 (or a directory walk), never with rfbackup's own listing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import RFBACKUP, Env, base_env, make_database, new_bucket, table_checksums

from rfbackup.manifest import Manifest, StoredFile
from rfbackup.sandbox.faultproxy import FaultProxy
from rfbackup.sandbox.postgres import ThrowawayPostgres
from rfbackup.sandbox.seaweedfs import ThrowawayS3

STAMP = "%Y%m%d_%H%M%S"


@pytest.fixture
def env(pg: ThrowawayPostgres, tmp_path: Path) -> Env:
    """conftest's env with a smaller database: these tests are about files, not volume."""
    dbname = make_database(pg, size=200_000)
    return Env(pg, tmp_path, dbname, {**base_env(tmp_path), **pg.env(dbname)})


@pytest.fixture(scope="module")
def proxy(s3: ThrowawayS3) -> Iterator[FaultProxy]:
    with FaultProxy(s3.endpoint) as p:
        yield p


@pytest.fixture(autouse=True)
def _no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").clear()


def stamp_of(key: str) -> str:
    return key.rsplit("/", 1)[-1].removeprefix("backup_")[:15]


def aged_manifest(manifest: dict[str, object], old: str, new: str, when: datetime) -> bytes:
    text = json.dumps(manifest).replace(old, new)
    doc = json.loads(text)
    doc["started_at"] = when.isoformat()
    return json.dumps(doc).encode()


def s3_aged_copies(
    s3: ThrowawayS3, bucket: str, prefix: str, name: str, days: list[int]
) -> list[str]:
    """Copies of one real backup as if taken ``days`` ago; the original is removed."""
    client = s3.client()
    manifest = json.loads(
        client.get_object(Bucket=bucket, Key=f"{prefix}/{name}.manifest.json")["Body"].read()
    )
    old = stamp_of(name)
    originals = sidecar_keys(name, manifest)
    now = datetime.now(UTC).replace(microsecond=0)
    names = []
    for d in days:
        when = now - timedelta(days=d)
        new = when.strftime(STAMP)
        for key in originals:
            client.copy_object(
                Bucket=bucket,
                Key=f"{prefix}/{key.replace(old, new)}",
                CopySource={"Bucket": bucket, "Key": f"{prefix}/{key}"},
            )
        client.put_object(
            Bucket=bucket,
            Key=f"{prefix}/{name.replace(old, new)}.manifest.json",
            Body=aged_manifest(manifest, old, new, when),
        )
        names.append(name.replace(old, new))
    for key in [*originals, f"{name}.manifest.json"]:
        client.delete_object(Bucket=bucket, Key=f"{prefix}/{key}")
    return names


def sidecar_keys(name: str, manifest: dict[str, Any]) -> list[str]:
    """The data key and the sidecars its manifest names (roles, database properties)."""
    return [name, *(str(r["key"]) for r in manifest["sidecars"] if r.get("key"))]


def local_aged_copies(folder: Path, name: str, days: list[int]) -> list[str]:
    manifest = json.loads((folder / f"{name}.manifest.json").read_text())
    old = stamp_of(name)
    originals = sidecar_keys(name, manifest)
    now = datetime.now(UTC).replace(microsecond=0)
    names = []
    for d in days:
        when = now - timedelta(days=d)
        new = when.strftime(STAMP)
        for key in originals:
            (folder / key.replace(old, new)).write_bytes((folder / key).read_bytes())
        (folder / f"{name.replace(old, new)}.manifest.json").write_bytes(
            aged_manifest(manifest, old, new, when)
        )
        names.append(name.replace(old, new))
    for key in [*originals, f"{name}.manifest.json"]:
        (folder / key).unlink()
    return names


def bucket_keys(s3: ThrowawayS3, bucket: str) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def through_proxy(s3: ThrowawayS3, proxy: FaultProxy, bucket: str) -> dict[str, str]:
    return {
        **s3.env(),
        "AWS_ENDPOINT_URL": proxy.endpoint,
        "RFBACKUP_REPOSITORY": f"s3://{bucket}/rf",
        "RFBACKUP_S3__MAX_ATTEMPTS": "2",  # retries happen, but tests stay quick
    }


def s3_backups(env: Env, s3: ThrowawayS3, days: list[int]) -> tuple[str, list[str]]:
    bucket = new_bucket(s3)
    r = env.run("backup", "postgres", "--json", **s3.env(), RFBACKUP_REPOSITORY=f"s3://{bucket}/rf")
    assert r.returncode == 0, r.stderr
    return bucket, s3_aged_copies(s3, bucket, "rf", json.loads(r.stdout)["name"], days)


FAULTS: dict[str, dict[str, Any]] = {
    "403": {"status": 403},
    "reset": {"reset": True},
    "cut short": {"truncate": 40},  # a half-received manifest is not an invalid one
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_unreadable_manifests_are_never_deleted(
    env: Env, s3: ThrowawayS3, proxy: FaultProxy, fault: str
) -> None:
    bucket, names = s3_backups(env, s3, [40, 41, 42])
    before = bucket_keys(s3, bucket)
    assert len(before) == 12  # data, roles, properties and manifest of each
    rule = proxy.add("GET", rf"^/{bucket}/.*\.manifest\.json$", **FAULTS[fault])
    r = env.run("prune", "--keep-days", "30", "--keep-min", "1", **through_proxy(s3, proxy, bucket))
    assert rule.hits >= 3, r.stderr  # every manifest read really failed
    assert r.returncode == 8, r.stderr
    assert "Traceback" not in r.stderr
    error = r.stderr.strip().splitlines()[-1]
    assert " ERROR " in error
    for name in names:
        assert f"s3://{bucket}/rf/{name}" in error
    assert bucket_keys(s3, bucket) == before


def test_503_on_the_newest_manifest_keeps_the_newest_good_backup(
    env: Env, s3: ThrowawayS3, proxy: FaultProxy
) -> None:
    bucket, (newest, middle, oldest) = s3_backups(env, s3, [40, 41, 42])
    rule = proxy.add("GET", rf"^/{bucket}/rf/{newest}\.manifest\.json$", status=503)
    extra = through_proxy(s3, proxy, bucket)
    r = env.run("prune", "--keep-days", "30", "--keep-min", "1", "--json", **extra)
    assert rule.hits >= 2  # retried, then given up
    assert r.returncode == 8, r.stderr
    assert newest in r.stderr.splitlines()[-1]
    decisions = {d["name"]: d for d in json.loads(r.stdout)["decisions"]}
    assert decisions[newest]["status"] == "unreadable"
    assert decisions[newest]["action"] == "keep"
    left = bucket_keys(s3, bucket)
    # The unreadable newest is kept, and it does not use up keep-min: the newest backup
    # that could be verified is kept too. Only the oldest goes.
    assert [k for k in left if k.endswith(".manifest.json")] == sorted(
        f"rf/{n}.manifest.json" for n in (newest, middle)
    )
    assert not any(stamp_of(oldest) in k for k in left)

    # An unreadable manifest is not a backup without one: never restored "unverified".
    copy = f"{env.dbname}_unverified"
    r = env.run("restore", newest, "--yes", "--allow-unverified", "--target-db", copy, **extra)
    assert r.returncode == 8, r.stderr
    assert copy not in env.databases()
    got = env.run("get", newest, str(env.cwd / "copy"), **extra)
    assert got.returncode == 8, got.stderr

    # With the fault gone, the kept newest backup restores to the same data.
    proxy.clear()
    copy = f"{env.dbname}_kept"
    r = env.run("restore", newest, "--yes", "--target-db", copy, **extra)
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(copy)) == table_checksums(env.pg.dsn(env.dbname))


def test_local_manifest_that_cannot_be_read_is_kept(env: Env) -> None:
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    newest, oldest = local_aged_copies(env.backups, r.stdout.strip(), [40, 41])
    manifest = env.backups / f"{newest}.manifest.json"
    manifest.unlink()
    manifest.mkdir()  # reading it fails with EISDIR, even as root
    before = env.data_files()

    r = env.run("prune", "--keep-days", "30", "--keep-min", "0", "--include-unmanaged")
    assert r.returncode == 8, r.stderr
    assert newest in r.stderr and "Traceback" not in r.stderr
    after = env.data_files()
    assert newest in after and manifest.is_dir()
    assert not any(stamp_of(oldest) in f for f in after)  # the readable, old one went
    assert sorted(set(before) - set(after)) == sorted(f for f in before if stamp_of(oldest) in f)


def test_a_file_that_cannot_be_examined_stops_prune_before_any_deletion(env: Env) -> None:
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    local_aged_copies(env.backups, r.stdout.strip(), [40, 41])
    loop = env.backups / "backup_20200101_000000.sql.gz"
    loop.symlink_to(loop.name)  # stat() fails with ELOOP
    before = env.data_files()
    r = env.run("prune", "--keep-days", "30", "--keep-min", "0", "--include-unmanaged")
    assert r.returncode == 8, r.stderr
    assert "Traceback" not in r.stderr and loop.name in r.stderr
    assert env.data_files() == before


def test_invalid_manifest_is_kept_unless_delete_damaged(env: Env) -> None:
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    damaged, good = local_aged_copies(env.backups, r.stdout.strip(), [40, 41])
    manifest = env.backups / f"{damaged}.manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:50])  # truncated JSON
    before = env.data_files()

    r = env.run("prune", "--keep-days", "30", "--keep-min", "1")
    assert r.returncode == 0, r.stderr
    assert env.data_files() == before
    assert damaged in r.stderr and "--delete-damaged" in r.stderr

    r = env.run("prune", "--keep-days", "30", "--keep-min", "1", "--delete-damaged")
    assert r.returncode == 0, r.stderr
    after = env.data_files()
    assert not any(stamp_of(damaged) in f for f in after)
    assert good in after and f"{good}.manifest.json" in after


def test_pitr_prune_with_an_unreadable_base_manifest(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "base").mkdir(parents=True)
    (repo / "base" / "20260101_000000.tar.zst").write_bytes(b"base backup bytes")
    (repo / "base" / "20260101_000000.tar.zst.manifest.json").mkdir()  # EISDIR on read
    (repo / "base" / "20260102_000000.tar.zst").write_bytes(b"base backup bytes")
    (repo / "base" / "20260102_000000.tar.zst.manifest.json").write_text('{"format": "rfb')
    wal = repo / "wal" / "0000000100000000"
    wal.mkdir(parents=True)
    for n in range(1, 4):
        (wal / f"00000001000000000000000{n}.zst").write_bytes(b"wal")
    before = sorted(str(p.relative_to(repo)) for p in repo.rglob("*"))

    r = subprocess.run(
        [*RFBACKUP, "pitr", "prune", "--repo", str(repo), "--keep-days", "0", "--keep-min", "1"],
        cwd=tmp_path,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 8, r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "base/20260101_000000.tar.zst" in errors[0], r.stderr
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*")) == before


def test_pitr_prune_keeps_all_wal_while_a_base_backup_is_unreadable(tmp_path: Path) -> None:
    """The unreadable base backup may need WAL from before the good one: none is deleted."""
    repo = tmp_path / "repo"
    (repo / "base").mkdir(parents=True)
    data = b"base backup bytes"
    older, newer = "base/20260101_000000.tar.zst", "base/20260102_000000.tar.zst"
    (repo / older).write_bytes(data)
    (repo / f"{older}.manifest.json").mkdir()  # EISDIR on read
    (repo / newer).write_bytes(data)
    good = Manifest(
        name=newer,
        component="postgres-base",
        environment="development",
        tool_version="test",
        started_at="2026-01-02T00:00:00+00:00",
        finished_at="2026-01-02T00:01:00+00:00",
        duration_seconds=60.0,
        compression="zstd",
        compression_level=3,
        data=StoredFile(newer, hashlib.sha256(data).hexdigest(), len(data), len(data)),
        source={
            "physical": {
                "system_identifier": "7000000000000000001",
                "timeline": 1,
                "wal_segment_size": 16 * 1024 * 1024,
                "wal_start": "000000010000000000000003",
                "wal_stop": "000000010000000000000003",
            }
        },
    )
    (repo / f"{newer}.manifest.json").write_bytes(good.to_json())
    wal = repo / "wal" / "0000000100000000"
    wal.mkdir(parents=True)
    for n in range(1, 6):
        (wal / f"00000001000000000000000{n}-{'0' * 64}.zst").write_bytes(b"wal")
    before = sorted(str(p.relative_to(repo)) for p in repo.rglob("*"))

    args = ["pitr", "prune", "--repo", str(repo), "--keep-days", "0", "--keep-min", "1"]
    r = subprocess.run(
        [*RFBACKUP, *args, "--json"],
        cwd=tmp_path,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 8, r.stderr
    assert older in r.stderr
    doc = json.loads(r.stdout)
    assert doc["wal_deleted"] == [] and doc["wal_kept"] == 5
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*")) == before

    # Once it can be read again (here: it is gone), WAL before the good backup goes.
    (repo / f"{older}.manifest.json").rmdir()
    (repo / older).unlink()
    r = subprocess.run(
        [*RFBACKUP, *args, "--json"],
        cwd=tmp_path,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["wal_deleted"]) == 2
    assert sorted(p.name[:24] for p in wal.iterdir()) == [
        f"00000001000000000000000{n}" for n in (3, 4, 5)
    ]
