"""Corrupted, truncated, foreign or missing files: a clear error, and no database changes."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Env, created_databases, ddl_mark, table_checksums


@pytest.fixture
def backed_up(env: Env) -> tuple[Env, str]:
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    return env, r.stdout.strip()


Snapshot = tuple[set[str], dict[str, str], int]


def assert_untouched(
    env: Env, before_dbs: set[str], before_data: dict[str, str], mark: int, *, loaded: bool = False
) -> None:
    """The same databases with the same data, and (for a refusal) no database ever created
    meanwhile, by the server's own log. ``loaded``: the refusal came after loading into a new
    database, which must be the only one created, and is gone again."""
    assert env.databases() == before_dbs
    assert table_checksums(env.pg.dsn(env.dbname)) == before_data
    created = created_databases(env.pg, mark)
    if loaded:
        assert len(created) == 1 and f'"{env.dbname}_restore_' in created[0], created
    else:
        assert created == []


def snapshot(env: Env) -> Snapshot:
    return env.databases(), table_checksums(env.pg.dsn(env.dbname)), ddl_mark(env.pg)


def flip_one_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupted_backup_is_refused(backed_up: tuple[Env, str]) -> None:
    env, name = backed_up
    flip_one_byte(env.backups / name, (env.backups / name).stat().st_size // 2)
    before = snapshot(env)
    r = env.run("restore", name, "--yes")
    assert r.returncode == 6
    assert "corrupted" in r.stderr and "sha256" in r.stderr
    assert_untouched(env, *before)


def test_truncated_backup_is_refused(backed_up: tuple[Env, str]) -> None:
    env, name = backed_up
    path = env.backups / name
    path.write_bytes(path.read_bytes()[:-100])
    before = snapshot(env)
    r = env.run("restore", name, "--yes")
    assert r.returncode == 6
    assert "differs from the manifest" in r.stderr
    assert_untouched(env, *before)
    listed = {e["name"]: e["status"] for e in json.loads(env.run("list", "--json").stdout)}
    assert listed[name] == "damaged"


def test_missing_file_is_refused(env: Env) -> None:
    before = snapshot(env)
    r = env.run("restore", "backups/backup_20250120_143000.sql.gz", "--yes")
    assert r.returncode == 7
    assert "no backup named" in r.stderr
    assert_untouched(env, *before)


def test_missing_data_with_manifest_is_refused(backed_up: tuple[Env, str]) -> None:
    env, name = backed_up
    (env.backups / name).unlink()
    before = snapshot(env)
    r = env.run("restore", name, "--yes")
    assert r.returncode == 6
    assert "the manifest's data file is missing" in r.stderr
    assert_untouched(env, *before)


def legacy_backup(env: Env, name: str) -> Path:
    """What the old scripts made: `pg_dump | gzip > backups/NAME`, no manifest."""
    env.backups.mkdir(exist_ok=True)
    path = env.backups / name
    subprocess.run(
        f"set -o pipefail; pg_dump --no-password | gzip > {path}",
        shell=True,
        executable="/bin/bash",
        env={**os.environ, **env.pg.env(env.dbname)},
        check=True,
    )
    return path


def test_foreign_file_needs_allow_unverified(env: Env) -> None:
    legacy_backup(env, "backup_20250120_143000.sql.gz")
    before = snapshot(env)
    r = env.run("restore", "backups/backup_20250120_143000.sql.gz", "--yes")
    assert r.returncode == 6
    assert "no manifest" in r.stderr and "--allow-unverified" in r.stderr
    assert_untouched(env, *before)

    r = env.run(
        "restore",
        "backups/backup_20250120_143000.sql.gz",
        "--yes",
        "--allow-unverified",
        "--target-db",
        "legacy_copy",
    )
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn("legacy_copy")) == before[1]


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_damaged_foreign_file_is_refused_even_when_allowed(env: Env, damage: str) -> None:
    path = legacy_backup(env, "backup_20250121_143000.sql.gz")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(os.urandom(4096))
    before = snapshot(env)
    r = env.run("restore", str(path), "--yes", "--allow-unverified")
    assert r.returncode == 6, r.stderr
    assert "damaged or truncated" in r.stderr
    assert_untouched(env, *before)


def test_row_count_mismatch_fails_and_keeps_current_database(
    backed_up: tuple[Env, str],
) -> None:
    env, name = backed_up
    manifest_path = env.backups / f"{name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source"]["row_counts"]["public.events"] += 1
    manifest_path.write_text(json.dumps(manifest))
    env.sql("INSERT INTO projects VALUES (gen_random_uuid(), 'after backup', 'x', now())")
    before = snapshot(env)
    r = env.run("restore", name, "--yes")
    assert r.returncode == 9
    assert "does not match the backup" in r.stderr and "public.events" in r.stderr
    assert_untouched(env, *before, loaded=True)


def test_psql_error_midway_keeps_current_database(backed_up: tuple[Env, str]) -> None:
    """A backup whose SQL fails half way: the new database is dropped, the old one stays."""
    env, name = backed_up
    path = env.backups / name
    sql = gzip.decompress(path.read_bytes())
    broken = gzip.compress(sql[: len(sql) // 2] + b"\nSELECT 1/0;\n" + sql[len(sql) // 2 :])
    path.write_bytes(broken)
    manifest_path = env.backups / f"{name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["data"].update(sha256=hashlib.sha256(broken).hexdigest(), stored_bytes=len(broken))
    manifest_path.write_text(json.dumps(manifest))
    before = snapshot(env)
    r = env.run("restore", name, "--yes")
    assert r.returncode == 9
    assert "psql failed" in r.stderr
    assert_untouched(env, *before, loaded=True)


def test_restore_without_yes_and_no_terminal_changes_nothing(backed_up: tuple[Env, str]) -> None:
    env, name = backed_up
    before = snapshot(env)
    r = env.run("restore", name)
    assert r.returncode == 10
    assert "confirmation needed" in r.stderr
    assert "127.0.0.1" in r.stderr and env.dbname in r.stderr  # names host and database
    assert_untouched(env, *before)


def test_restore_from_an_unfinished_write_is_refused(backed_up: tuple[Env, str]) -> None:
    env, name = backed_up
    partial = env.backups / f".{name.replace('.sql.gz', '9.sql.gz')}.partial"
    partial.write_bytes(b"half a backup")
    before = snapshot(env)
    r = env.run("restore", partial.name[1 : -len(".partial")], "--yes")
    assert r.returncode == 6
    assert "unfinished write" in r.stderr
    assert_untouched(env, *before)


def test_prune_databases_drops_only_old_idle_leftovers(backed_up: tuple[Env, str]) -> None:
    import psycopg

    env, name = backed_up
    r = env.run("restore", name, "--yes", "--json")
    assert r.returncode == 0, r.stderr
    kept = json.loads(r.stdout)["previous_kept_as"]
    env.sql(f"CREATE DATABASE {env.dbname}_restore_20200101_000000", "postgres")  # a killed restore
    env.sql(f"CREATE DATABASE {env.dbname}_pre_restore_20200101_000000", "postgres")
    busy = f"{env.dbname}_restore_20200102_000000"
    env.sql(f"CREATE DATABASE {busy}", "postgres")
    with psycopg.connect(env.pg.dsn(busy)):  # a restore still running there
        dry = env.run("prune-databases", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        actions = {d["database"]: d["action"] for d in json.loads(dry.stdout)["databases"]}
        assert actions[kept] == "keep"  # newer than 7 days
        assert actions[busy] == "keep"
        assert actions[f"{env.dbname}_restore_20200101_000000"] == "drop"
        assert env.run("prune-databases").returncode == 10  # no terminal, no --yes
        r = env.run("prune-databases", "--yes")
        assert r.returncode == 0, r.stderr
    left = env.databases()
    assert kept in left and busy in left and env.dbname in left
    assert f"{env.dbname}_restore_20200101_000000" not in left
    assert f"{env.dbname}_pre_restore_20200101_000000" not in left


def test_restore_swaps_even_with_the_application_connected(backed_up: tuple[Env, str]) -> None:
    import psycopg

    env, name = backed_up
    before = table_checksums(env.pg.dsn(env.dbname))
    app = psycopg.connect(env.pg.dsn(env.dbname), autocommit=True)
    try:
        env.sql("DELETE FROM notes")
        r = env.run("restore", name, "--yes")
        assert r.returncode == 0, r.stderr
        with pytest.raises(psycopg.OperationalError):
            app.execute("SELECT 1")  # its session was ended for the swap
    finally:
        app.close()
    assert table_checksums(env.pg.dsn(env.dbname)) == before


@pytest.mark.parametrize("answer", ["n", "y"])
def test_confirmation_on_a_terminal(backed_up: tuple[Env, str], answer: str) -> None:
    from conftest import RFBACKUP

    env, name = backed_up
    before = snapshot(env)
    env.sql("DELETE FROM notes")
    changed = snapshot(env)
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [*RFBACKUP, "restore", name],
            cwd=env.cwd,
            env=env.vars,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(master, f"{answer}\n".encode())
        _, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
        os.close(slave)
    assert f"into database '{env.dbname}' on 127.0.0.1" in err  # the prompt names both
    if answer == "n":
        assert proc.returncode == 10
        assert_untouched(env, *changed)
    else:
        assert proc.returncode == 0, err
        assert table_checksums(env.pg.dsn(env.dbname)) == before[1]


def test_prune_databases_labels_previous_databases() -> None:
    from datetime import UTC, datetime

    from rfbackup.prune_databases import plan

    found = plan(
        {"rf_pre_restore_20200101_000000": 0, "rf_restore_20200101_000000": 0}, 7, datetime.now(UTC)
    )
    assert {d.name: d.kind for d in found} == {
        "rf_pre_restore_20200101_000000": "previous",
        "rf_restore_20200101_000000": "abandoned",
    }
