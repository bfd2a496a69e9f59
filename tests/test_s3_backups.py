"""Backups into a real S3 server (SeaweedFS): plain, SSE-S3 and age-encrypted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import Env, created_databases, ddl_mark, new_bucket, table_checksums

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def s3_env(env: Env, s3: ThrowawayS3, bucket: str, **extra: str) -> dict[str, str]:
    return {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{bucket}/researchflow", **extra}


def keypair(tmp_path: Path) -> tuple[str, Path]:
    key = tmp_path / "age-identity.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return public, key


@pytest.mark.parametrize("sse", [None, "AES256"])
def test_round_trip_through_s3(env: Env, s3: ThrowawayS3, sse: str | None) -> None:
    bucket = new_bucket(s3)
    extra = s3_env(env, s3, bucket, **({"RFBACKUP_S3__SSE": sse} if sse else {}))
    before = table_checksums(env.pg.dsn(env.dbname))
    b = env.run("backup", "postgres", "--json", **extra)
    assert b.returncode == 0, b.stderr
    name = json.loads(b.stdout)["name"]
    assert name.startswith("postgres/") and name.endswith(".sql.gz")
    keys = sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"])
    stem = name[: -len(".sql.gz")]
    assert keys == sorted(
        f"researchflow/{k}"
        for k in (
            name,
            f"{name}.manifest.json",
            f"{stem}.roles.gz",
            f"{stem}.dbprops.json",
        )
    )
    head = s3.client().head_object(Bucket=bucket, Key=f"researchflow/{name}")
    assert head.get("ServerSideEncryption") == sse

    listed = json.loads(env.run("list", "--json", **extra).stdout)
    assert [(e["name"], e["status"]) for e in listed] == [(name, "ok")]
    assert env.data_files() == []  # nothing spilled to the local folder

    copy = f"{env.dbname}_from_s3"
    r = env.run("restore", name, "--yes", "--target-db", copy, **extra)
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(copy)) == before


def test_encrypted_round_trip_and_age_cli_interop(
    env: Env, s3: ThrowawayS3, tmp_path: Path
) -> None:
    public, identity = keypair(tmp_path)
    bucket = new_bucket(s3)
    extra = s3_env(env, s3, bucket, RFBACKUP_ENCRYPTION__RECIPIENTS=public)
    before = table_checksums(env.pg.dsn(env.dbname))
    b = env.run("backup", "postgres", "--env", "production", "--json", **extra)
    assert b.returncode == 0, b.stderr
    name = json.loads(b.stdout)["name"]
    assert name.endswith(".sql.gz.age")

    # The standard age CLI opens what we wrote: age -d | gunzip gives the SQL dump.
    obj = s3.client().get_object(Bucket=bucket, Key=f"researchflow/{name}")["Body"].read()
    sql = subprocess.run(
        f"age -d -i {identity} | gunzip -c",
        shell=True,
        input=obj,
        capture_output=True,
        check=True,
    ).stdout
    assert b"COPY public.events" in sql
    manifest = json.loads(
        s3.client()
        .get_object(Bucket=bucket, Key=f"researchflow/{name}.manifest.json")["Body"]
        .read()
    )
    assert manifest["encryption"] == {"format": "age", "recipients": [public]}
    assert "AGE-SECRET-KEY" not in json.dumps(manifest)

    # Restoring needs the identity; without it, or with the wrong one, nothing is touched.
    dbs, mark = env.databases(), ddl_mark(env.pg)
    r = env.run("restore", name, "--yes", "--target-db", "enc_copy", **extra)
    assert r.returncode == 3 and "IDENTITY_FILE" in r.stderr
    (tmp_path / "other").mkdir()
    _, wrong = keypair(tmp_path / "other")
    r = env.run(
        "restore",
        name,
        "--yes",
        "--target-db",
        "enc_copy",
        RFBACKUP_ENCRYPTION__IDENTITY_FILE=str(wrong),
        **extra,
    )
    assert r.returncode == 3 and "does not match" in r.stderr
    assert env.databases() == dbs
    assert created_databases(env.pg, mark) == []

    r = env.run(
        "restore",
        name,
        "--yes",
        "--target-db",
        "enc_copy",
        RFBACKUP_ENCRYPTION__IDENTITY_FILE=str(identity),
        **extra,
    )
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn("enc_copy")) == before


def test_encrypted_local_backup_opens_with_age_cli(env: Env, tmp_path: Path) -> None:
    public, identity = keypair(tmp_path)
    b = env.run("backup", "postgres", RFBACKUP_ENCRYPTION__RECIPIENTS=public)
    assert b.returncode == 0, b.stderr
    name = b.stdout.strip()
    assert name.endswith(".sql.gz.age")
    env.sql("CREATE DATABASE by_age_cli", "postgres")
    subprocess.run(
        f"set -o pipefail; age -d -i {identity} backups/{name} | gunzip -c"
        " | psql -X -q -v ON_ERROR_STOP=1",
        shell=True,
        executable="/bin/bash",
        cwd=env.cwd,
        check=True,
        capture_output=True,
        env={**env.vars, "PGDATABASE": "by_age_cli"},
    )
    assert table_checksums(env.pg.dsn("by_age_cli")) == table_checksums(env.pg.dsn(env.dbname))
