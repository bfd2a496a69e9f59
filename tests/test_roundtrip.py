"""A backup is proven by restoring it and comparing data with the original."""

from __future__ import annotations

import gzip
import json
import os
import subprocess

from conftest import Env, created_databases, ddl_mark, schema_dump, table_checksums
from manifest_doc import sidecar

from rfbackup.sandbox.postgres import ThrowawayPostgres


def backup(env: Env, *args: str) -> str:
    r = env.run("backup", "postgres", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_backup_restore_swap_reproduces_data_exactly(env: Env) -> None:
    before = table_checksums(env.pg.dsn(env.dbname))
    schema_before = schema_dump(env.pg, env.dbname)
    name = backup(env)
    assert name.startswith("backup_") and name.endswith(".sql.gz")

    env.sql("DELETE FROM events WHERE id % 3 = 0; DROP VIEW run_summary")  # the accident
    assert table_checksums(env.pg.dsn(env.dbname)) != before

    r = env.run("restore", f"backups/{name}", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["database"] == env.dbname
    kept = result["previous_kept_as"]
    assert kept.startswith(f"{env.dbname}_pre_restore_")

    assert table_checksums(env.pg.dsn(env.dbname)) == before
    assert schema_dump(env.pg, env.dbname) == schema_before
    # The damaged database was kept, unchanged, under its dated name.
    assert env.sql("SELECT count(*) FROM pg_views WHERE viewname = 'run_summary'", kept) == "0"


def test_manifest_records_what_restore_checks(env: Env) -> None:
    name = backup(env)
    manifest = json.loads((env.backups / f"{name}.manifest.json").read_text())
    data = (env.backups / name).read_bytes()
    import hashlib

    assert manifest["data"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["data"]["stored_bytes"] == len(data)
    assert manifest["data"]["raw_bytes"] == len(gzip.decompress(data))
    assert manifest["status"] == "done"
    assert manifest["environment"] == "development"
    assert manifest["source"]["database"]["name"] == env.dbname
    assert manifest["source"]["database"]["server_version"].startswith("15")
    assert manifest["source"]["dump"]["pg_dump_version"].startswith("pg_dump (PostgreSQL)")
    assert manifest["compression"] == "gzip"
    assert manifest["started_at"] <= manifest["finished_at"]
    expected = {
        f"public.{t}": int(env.sql(f"SELECT count(*) FROM {t}"))
        for t in ("projects", "runs", "events", "notes", "artifacts")
    }
    assert manifest["source"]["row_counts"] == expected
    assert sidecar(manifest, "roles")["captured"] is True


def test_gunzip_psql_by_hand_still_works(env: Env) -> None:
    name = backup(env)
    env.sql("CREATE DATABASE byhand", "postgres")
    subprocess.run(
        f"set -o pipefail; gunzip -c backups/{name} | psql -X -q -v ON_ERROR_STOP=1",
        shell=True,
        executable="/bin/bash",
        cwd=env.cwd,
        env={**os.environ, **env.pg.env("byhand")},
        check=True,
        capture_output=True,
    )
    assert table_checksums(env.pg.dsn("byhand")) == table_checksums(env.pg.dsn(env.dbname))


def test_zstd_custom_format_parallel_and_streamed_restore(env: Env) -> None:
    before = table_checksums(env.pg.dsn(env.dbname))
    name = backup(env, "--format", "custom", "--compression", "zstd")
    assert name.endswith(".dump.zst")
    for jobs, target in (("2", "par_copy"), ("1", "stream_copy")):
        r = env.run("restore", name, "--yes", "--target-db", target, "--jobs", jobs)
        assert r.returncode == 0, r.stderr
        assert table_checksums(env.pg.dsn(target)) == before
    # --target-db restores beside: the original is untouched and not renamed.
    assert table_checksums(env.pg.dsn(env.dbname)) == before
    assert not any(d.startswith(f"{env.dbname}_pre_restore_") for d in env.databases())


def test_target_db_refuses_an_existing_database(env: Env) -> None:
    name = backup(env)
    before, mark = table_checksums(env.pg.dsn(env.dbname)), ddl_mark(env.pg)
    r = env.run("restore", name, "--yes", "--target-db", env.dbname)
    assert r.returncode == 9
    assert f"database '{env.dbname}' already exists" in r.stderr
    assert created_databases(env.pg, mark) == []
    assert table_checksums(env.pg.dsn(env.dbname)) == before


def test_restore_onto_a_new_server_creates_missing_roles(env: Env, tmp_path: object) -> None:
    before = table_checksums(env.pg.dsn(env.dbname))
    name = backup(env)
    with ThrowawayPostgres() as other:
        assert other.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'app'") == "0"
        r = env.run("restore", name, "--yes", **other.env(env.dbname))
        assert r.returncode == 0, r.stderr
        assert table_checksums(other.dsn(env.dbname)) == before
        owner = other.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'", env.dbname)
        assert owner == "app"
        # A fresh server had no database of that name: nothing to keep.
        assert not any(
            "_pre_restore_" in d for d in other.psql("SELECT datname FROM pg_database").split()
        )
