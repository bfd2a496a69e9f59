"""keep-min per lineage, --include-unmanaged only for backup names, roles sidecar names,
and the host that --json reports. State is checked by walking the folder, never with list."""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Env, base_env, make_database, new_bucket, table_checksums
from manifest_doc import pop_sidecar, sidecar
from test_prune_doubt import local_aged_copies, stamp_of
from test_s3_operations import replica_env

from rfbackup.catalog import Entry
from rfbackup.manifest import Manifest, StoredFile
from rfbackup.retention import Policy, plan
from rfbackup.sandbox.postgres import ThrowawayPostgres
from rfbackup.sandbox.seaweedfs import ThrowawayS3

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def env(pg: ThrowawayPostgres, tmp_path: Path) -> Env:
    """conftest's env with a smaller database: these tests are about files, not volume."""
    dbname = make_database(pg, size=200_000)
    return Env(pg, tmp_path, dbname, {**base_env(tmp_path), **pg.env(dbname)})


def manifest(db: str, env: str = "development") -> Manifest:
    return Manifest(
        name="x",
        component="postgres",
        environment=env,
        tool_version="0",
        started_at=NOW.isoformat(),
        finished_at=NOW.isoformat(),
        duration_seconds=1.0,
        compression="gzip",
        compression_level=4,
        data=StoredFile("x", "0" * 64, 100, 100),
        subject=db,
        source={"database": {"name": db}},
    )


def entry(days: int, db: str, status: str = "ok") -> Entry:
    created = NOW - timedelta(days=days)
    name = f"backup_{created:%Y%m%d_%H%M%S}.sql.gz"
    m = None if status == "unreadable" else manifest(db)
    return Entry(name, "postgres", "development", created, 100, status, m)


def kept(entries: list[Entry], policy: Policy) -> list[tuple[int, str]]:
    return sorted(
        (
            (NOW - d.entry.created_at).days,
            d.entry.manifest.database["name"] if d.entry.manifest else "?",
        )
        for d in plan(entries, policy, NOW)
        if not d.delete
    )


def test_keep_min_applies_to_each_database() -> None:
    entries = [entry(40, "a"), entry(41, "a"), entry(42, "a"), entry(43, "b"), entry(44, "b")]
    assert kept(entries, Policy(30, 1)) == [(40, "a"), (43, "b")]
    assert kept(entries, Policy(30, 2)) == [(40, "a"), (41, "a"), (43, "b"), (44, "b")]


def test_an_unreadable_entry_never_costs_a_good_backup_its_place() -> None:
    """Whether the unreadable newest entry is good or not, keep what either case would keep."""
    entries = [entry(40, "a", "unreadable"), entry(41, "a"), entry(42, "a"), entry(43, "a")]
    # If it were bad: keep-min 2 keeps 41 and 42. If good: it is kept. So keep all three.
    assert kept(entries, Policy(30, 2)) == [(40, "?"), (41, "a"), (42, "a")]
    assert kept(entries, Policy(0, 0)) == [(40, "?")]


def test_two_databases_in_one_folder_keep_min_each(env: Env) -> None:
    other = make_database(env.pg, size=200_000)
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    mine = local_aged_copies(env.backups, r.stdout.strip(), [40, 41, 42])
    r = env.run("backup", "postgres", PGDATABASE=other)
    assert r.returncode == 0, r.stderr
    theirs = local_aged_copies(env.backups, r.stdout.strip(), [45, 46])

    r = env.run("prune", "--keep-days", "30", "--keep-min", "1")
    assert r.returncode == 0, r.stderr
    files = env.data_files()
    data = sorted(f for f in files if fnmatch.fnmatch(f, "backup_*.sql.gz"))
    assert data == sorted([mine[0], theirs[0]])
    for name in data:
        assert f"{name}.manifest.json" in files
    assert len(files) == 8  # two backups: data, roles, properties, manifest each

    # The only backup left of the other database is a real one: it restores.
    r = env.run("restore", theirs[0], "--yes", "--target-db", f"{other}_back")
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(f"{other}_back")) == table_checksums(env.pg.dsn(other))


def test_include_unmanaged_touches_only_backup_names(env: Env) -> None:
    env.backups.mkdir()
    foreign = env.backups / "backup_20200101_000000.sql.gz"
    foreign.write_bytes(b"made by the old scripts")
    notes = env.backups / "README.txt"
    notes.write_text("what is in this folder")
    archive = env.backups / "important.tar"
    archive.write_bytes(b"not ours")
    for path in (foreign, notes, archive):
        os.utime(path, (0, 0))

    r = env.run("prune", "--include-unmanaged", "--keep-days", "30", "--keep-min", "0")
    assert r.returncode == 0, r.stderr
    assert env.data_files() == ["README.txt", "important.tar"]


def test_new_roles_sidecar_is_outside_the_runbook_glob(env: Env) -> None:
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    name = r.stdout.strip()
    files = env.data_files()
    # `ls backups/backup_*.sql.gz | tail -1` finds the dump, nothing else.
    assert fnmatch.filter(files, "backup_*.sql.gz") == [name]
    doc = json.loads((env.backups / f"{name}.manifest.json").read_text())
    roles = sidecar(doc, "roles")["key"]
    assert roles == name.removesuffix(".sql.gz") + ".roles.gz" and roles in files
    assert b"CREATE ROLE" in gzip.decompress((env.backups / roles).read_bytes())
    listed = json.loads(env.run("list", "--json").stdout)
    assert [e["name"] for e in listed] == [name]

    before = table_checksums(env.pg.dsn(env.dbname))
    env.sql("DROP TABLE notes")  # restore must bring it back, roles file read and checked
    r = env.run("restore", name, "--yes")
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(env.dbname)) == before


def test_old_roles_sidecar_name_still_restores_and_is_pruned(env: Env, tmp_path: Path) -> None:
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    (name,) = local_aged_copies(env.backups, r.stdout.strip(), [40])
    # Make it look like a backup from before the rename.
    manifest_path = env.backups / f"{name}.manifest.json"
    doc = json.loads(manifest_path.read_text())
    old = name.removesuffix(".sql.gz") + ".roles.sql.gz"
    (env.backups / sidecar(doc, "roles")["key"]).rename(env.backups / old)
    sidecar(doc, "roles")["key"] = old
    (env.backups / pop_sidecar(doc, "db_properties")["key"]).unlink()  # older than that sidecar too
    manifest_path.write_text(json.dumps(doc))
    assert [e["name"] for e in json.loads(env.run("list", "--json").stdout)] == [name]

    got = env.run("get", name, str(tmp_path / "copy"))
    assert got.returncode == 0, got.stderr
    assert sorted(os.listdir(tmp_path / "copy")) == sorted([name, old, f"{name}.manifest.json"])

    copy = f"{env.dbname}_old"
    r = env.run("restore", name, "--yes", "--target-db", copy)
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(copy)) == table_checksums(env.pg.dsn(env.dbname))

    r = env.run("prune", "--keep-days", "30", "--keep-min", "0")
    assert r.returncode == 0, r.stderr
    assert not any(stamp_of(name) in f for f in env.data_files())
    assert env.data_files() == []


def test_json_reports_the_socket_directory_as_host(env: Env) -> None:
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    socket_dir = str(env.pg.socket_dir)
    copy = f"{env.dbname}_sock"
    r = env.run(
        "restore", r.stdout.strip(), "--yes", "--target-db", copy, "--json", PGHOST=socket_dir
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["host"] == socket_dir
    assert doc["port"] == env.pg.port


def test_replica_sync_copies_an_old_named_roles_sidecar(
    env: Env, s3: ThrowawayS3, s3_replica: ThrowawayS3
) -> None:
    primary, dr = new_bucket(s3), new_bucket(s3_replica)
    extra = {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{primary}/rf"}
    r = env.run("backup", "postgres", **extra)
    assert r.returncode == 0, r.stderr
    name = r.stdout.strip()
    # Rename the sidecar in the bucket as a backup from before the rename would have it.
    client = s3.client()
    manifest_key = f"rf/{name}.manifest.json"
    doc = json.loads(client.get_object(Bucket=primary, Key=manifest_key)["Body"].read())
    new = sidecar(doc, "roles")["key"]
    old = new.removesuffix(".roles.gz") + ".roles.sql.gz"
    client.copy_object(
        Bucket=primary, Key=f"rf/{old}", CopySource={"Bucket": primary, "Key": f"rf/{new}"}
    )
    client.delete_object(Bucket=primary, Key=f"rf/{new}")
    sidecar(doc, "roles")["key"] = old
    client.delete_object(Bucket=primary, Key=f"rf/{pop_sidecar(doc, 'db_properties')['key']}")
    client.put_object(Bucket=primary, Key=manifest_key, Body=json.dumps(doc).encode())

    extra.update(replica_env(s3_replica, dr))
    r = env.run("replica", "sync", **extra)
    assert r.returncode == 0, r.stderr
    pages = s3_replica.client().get_paginator("list_objects_v2").paginate(Bucket=dr)
    copied = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
    assert copied == sorted(f"dr/{k}" for k in (name, old, f"{name}.manifest.json"))
    assert env.run("replica", "check", **extra).returncode == 0
