"""Restores that would replace the wrong thing, or the right thing with nothing, are refused;
failures are reported as what they are."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from conftest import Env, make_database, rewrite_dump, table_checksums

from rfbackup.sandbox.postgres import PG_BIN


def backup(env: Env, *args: str, **extra: str) -> str:
    r = env.run("backup", "postgres", *args, **extra)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def snapshot(env: Env, dbname: str | None = None) -> tuple[set[str], dict[str, str]]:
    return env.databases(), table_checksums(env.pg.dsn(dbname or env.dbname))


def assert_refused_untouched(
    env: Env, r: subprocess.CompletedProcess[str], before: tuple[set[str], dict[str, str]]
) -> None:
    """Nothing changed: the same databases (none left behind) and the same data."""
    assert env.databases() == before[0]
    assert table_checksums(env.pg.dsn(env.dbname)) == before[1]
    assert len(r.stderr.strip().splitlines()) >= 1


def never_created_a_database(r: subprocess.CompletedProcess[str]) -> None:
    assert "into new database" not in r.stderr, r.stderr


# -- 4 / 14.3: a path means exactly that path ------------------------------------------------


def test_a_path_restores_exactly_that_file_and_a_bare_name_must_be_unique(env: Env) -> None:
    first = backup(env)
    original = table_checksums(env.pg.dsn(env.dbname))
    env.sql("DELETE FROM notes")
    second = backup(env)  # another backup, moved to archive/ under the first one's name
    archive = env.backups / "archive"
    archive.mkdir()
    for f in list(env.backups.iterdir()):
        if f.name.startswith(second.removesuffix(".sql.gz")):
            target = f.name.replace(second, first) if f.name.startswith(second) else f.name
            shutil.move(f, archive / target)
    assert (archive / first).exists() and (env.backups / first).exists()

    before = snapshot(env)
    r = env.run("restore", first, "--yes")  # bare name: two candidates
    assert r.returncode == 3, r.stderr
    assert "matches 2 backups" in r.stderr
    assert first in r.stderr and f"archive/{first}" in r.stderr
    never_created_a_database(r)
    assert_refused_untouched(env, r, before)

    r = env.run("restore", f"backups/{first}", "--yes")
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(env.dbname)) == original  # the first backup's data


def test_a_path_that_does_not_exist_is_not_looked_up_by_name(env: Env) -> None:
    name = backup(env)
    (env.cwd / "elsewhere").mkdir()
    before = snapshot(env)
    for arg in (f"elsewhere/{name}", f"./{name}"):
        r = env.run("restore", arg, "--yes")
        assert r.returncode == 7, r.stderr
        assert "no such file" in r.stderr
        never_created_a_database(r)
        assert_refused_untouched(env, r, before)


# -- 5: empty and incomplete dumps ------------------------------------------------------------


def legacy_file(env: Env, name: str, data: bytes) -> Path:
    env.backups.mkdir(exist_ok=True)
    path = env.backups / name
    path.write_bytes(data)
    return path


def plain_dump(env: Env, dbname: str) -> bytes:
    return subprocess.run(
        [str(PG_BIN / "pg_dump"), "--no-password"],
        env={**os.environ, **env.pg.env(dbname)},
        capture_output=True,
        check=True,
    ).stdout


@pytest.mark.parametrize(
    "content,expected",
    [
        ("zero bytes", "empty"),
        ("empty gzip", "empty"),
        ("cut short", "dump complete"),
        ("not a dump", "does not start like"),
    ],
)
def test_incomplete_or_empty_dumps_are_refused_before_any_database(
    env: Env, content: str, expected: str
) -> None:
    sql = plain_dump(env, env.dbname)
    data = {
        "zero bytes": b"",
        "empty gzip": gzip.compress(b""),
        "cut short": gzip.compress(sql[: sql.rindex(b"\nCOPY ")]),
        "not a dump": gzip.compress(b"SELECT 1;\n"),
    }[content]
    legacy_file(env, "backup_20250101_000000.sql.gz", data)
    before = snapshot(env)
    r = env.run("restore", "backup_20250101_000000.sql.gz", "--yes", "--allow-unverified")
    assert r.returncode == 6, r.stderr
    assert expected in r.stderr
    never_created_a_database(r)
    assert_refused_untouched(env, r, before)


def test_custom_file_without_its_header_is_refused(env: Env) -> None:
    legacy_file(env, "backup_20250101_000000.dump.gz", gzip.compress(plain_dump(env, env.dbname)))
    before = snapshot(env)
    r = env.run("restore", "backup_20250101_000000.dump.gz", "--yes", "--allow-unverified")
    assert r.returncode == 6, r.stderr
    assert "PGDMP" in r.stderr
    assert_refused_untouched(env, r, before)


def test_custom_file_with_a_cut_table_of_contents_is_refused_before_any_database(
    env: Env,
) -> None:
    custom = subprocess.run(
        [str(PG_BIN / "pg_dump"), "--no-password", "--format=custom", "--compress=0"],
        env={**os.environ, **env.pg.env(env.dbname)},
        capture_output=True,
        check=True,
    ).stdout
    assert custom.startswith(b"PGDMP")
    legacy_file(env, "backup_20250101_000000.dump.gz", gzip.compress(custom[:300]))
    before = snapshot(env)
    r = env.run("restore", "backup_20250101_000000.dump.gz", "--yes", "--allow-unverified")
    assert r.returncode == 6, r.stderr
    assert "table of contents" in r.stderr
    never_created_a_database(r)
    assert_refused_untouched(env, r, before)

    legacy_file(env, "backup_20250102_000000.dump.gz", gzip.compress(custom))  # the whole dump
    copy = f"{env.dbname}_custom_copy"
    r = env.run(
        "restore",
        "backup_20250102_000000.dump.gz",
        "--yes",
        "--allow-unverified",
        "--target-db",
        copy,
    )
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(copy)) == before[1]


def test_a_verified_backup_without_its_footer_is_refused_before_the_swap(env: Env) -> None:
    name = backup(env)
    rewrite_dump(env, name, lambda sql: sql[: sql.index(b"-- PostgreSQL database dump complete")])
    before = snapshot(env)
    r = env.run("restore", name, "--yes")
    assert r.returncode == 6, r.stderr
    assert "dump complete" in r.stderr
    assert_refused_untouched(env, r, before)


def test_an_empty_database_replaces_one_with_data_only_with_allow_empty(env: Env) -> None:
    empty = f"{env.dbname}_empty_src"
    env.sql(f"CREATE DATABASE {empty}", "postgres")
    legacy_file(env, "backup_20250101_000000.sql.gz", gzip.compress(plain_dump(env, empty)))
    env.sql(f"DROP DATABASE {empty}", "postgres")
    before = snapshot(env)
    args = ("restore", "backup_20250101_000000.sql.gz", "--yes", "--allow-unverified")
    r = env.run(*args)
    assert r.returncode == 9, r.stderr
    assert "--allow-empty" in r.stderr and "holds data" in r.stderr
    assert_refused_untouched(env, r, before)

    r = env.run(*args, "--allow-empty", "--json")
    assert r.returncode == 0, r.stderr
    kept = json.loads(r.stdout)["previous_kept_as"]
    assert env.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
    assert table_checksums(env.pg.dsn(kept)) == before[1]


# -- 6: a killed --target-db restore ----------------------------------------------------------


def test_killed_target_db_restore_leaves_nothing_under_the_requested_name(big_env: Env) -> None:
    env = big_env
    name = backup(env)
    copy = f"{env.dbname}_killed_copy"
    proc = env.popen("restore", name, "--target-db", copy, "--yes")
    loading = "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE %s AND query LIKE 'COPY%%'"
    try:
        deadline = time.monotonic() + 120
        with psycopg.connect(env.pg.dsn("postgres"), autocommit=True) as conn:
            while conn.execute(loading, (f"{copy}%",)).fetchone()[0] == 0:  # type: ignore[index]
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the restore never started loading"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)  # psql lives on, sees EOF, and ends its transaction
            proc.wait(timeout=30)
            while conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE %s", (f"{copy}%",)
            ).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline, "psql never finished"
                time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = env.databases()
    assert copy not in left
    work = [d for d in left if d.startswith(f"{copy}_restore_")]
    assert len(work) == 1, left
    r = env.run("prune-databases", "--dry-run", "--json", "--keep-days", "0")
    assert r.returncode == 0, r.stderr
    listed = {d["database"]: d["kind"] for d in json.loads(r.stdout)["databases"]}
    assert listed[work[0]] == "abandoned"
    env.sql(f'DROP DATABASE "{work[0]}"', "postgres")


# -- 7 / 14.2: the wrong database, and what the question says ---------------------------------


def test_backup_of_another_database_needs_force_target(env: Env) -> None:
    name = backup(env)
    other = make_database(env.pg, size=50_000)
    other_env = Env(env.pg, env.cwd, other, {**env.vars, "PGDATABASE": other})
    before = snapshot(other_env)
    r = other_env.run("restore", name, "--yes")
    assert r.returncode == 9, r.stderr
    assert f"backup of database '{env.dbname}', not '{other}'" in r.stderr
    assert "--force-target" in r.stderr
    never_created_a_database(r)
    assert env.databases() == before[0]
    assert table_checksums(env.pg.dsn(other)) == before[1]

    r = other_env.run("restore", name, "--yes", "--force-target")
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(other)) == table_checksums(env.pg.dsn(env.dbname))

    fresh = f"{env.dbname}_fresh"  # a database that does not exist yet replaces nothing
    r = env.run("restore", name, "--yes", PGDATABASE=fresh)
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(fresh)) == table_checksums(env.pg.dsn(env.dbname))


def test_the_question_says_what_will_happen(env: Env) -> None:
    name = backup(env)
    before = snapshot(env)
    with psycopg.connect(env.pg.dsn(env.dbname)), psycopg.connect(env.pg.dsn(env.dbname)):
        r = env.run("restore", name)  # no terminal, no --yes: the question is in the error
    assert r.returncode == 10
    err = r.stderr
    assert f"(database '{env.dbname}' in development, taken 0m ago)" in err
    assert f"into database '{env.dbname}' on 127.0.0.1:{env.pg.port} (development)" in err
    assert f"2 open session(s) on '{env.dbname}' will be terminated" in err
    assert "kept under a dated name; it holds" in err and "of disk until it is dropped" in err
    assert "The restored copy needs about" in err and "free" in err
    assert len(err.strip().splitlines()) == 1
    assert_refused_untouched(env, r, before)


# -- 15: failures reported as what they are ---------------------------------------------------


def test_temp_space_running_out_is_disk_full_not_a_damaged_backup(env: Env, tmp_path: Path) -> None:
    name = backup(env, "--format", "custom")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(scratch)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        before = snapshot(env)
        r = env.run("restore", name, "--yes", "--jobs", "2", RFBACKUP_TMP_DIR=str(scratch))
        assert r.returncode == 8, r.stderr
        assert "disk full" in r.stderr
        assert "damaged" not in r.stderr
        assert_refused_untouched(env, r, before)
        assert list(scratch.iterdir()) == []
    finally:
        subprocess.run(["umount", str(scratch)], check=True)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_failing_custom_restore_reports_the_error_line(env: Env, tmp_path: Path, jobs: str) -> None:
    name = backup(env, "--format", "custom")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "pg_restore"  # a conflicting table appears before pg_restore runs
    shim.write_text(
        "#!/bin/sh\n"
        'prev=""; for a in "$@"; do [ "$prev" = "-d" ] && db="$a"; prev="$a"; done\n'
        f'"{PG_BIN}/psql" -X -q -d "$db" -c "CREATE TABLE public.projects (x int)"\n'
        f'exec "{PG_BIN}/pg_restore" "$@"\n'
    )
    shim.chmod(0o755)
    for tool in ("pg_dump", "pg_dumpall", "psql"):
        (bindir / tool).symlink_to(PG_BIN / tool)
    before = snapshot(env)
    r = env.run("restore", name, "--yes", "--jobs", jobs, RFBACKUP_PG_BIN=str(bindir))
    assert r.returncode == 9, r.stderr
    message = r.stderr.strip().splitlines()[-1]
    assert 'ERROR:  relation "projects" already exists' in message, r.stderr
    assert_refused_untouched(env, r, before)


# -- issue 15, 13: an extra table in the restored database ------------------------------------


def test_an_extra_table_in_the_restored_database_is_refused(env: Env) -> None:
    name = backup(env)
    footer = b"--\n-- PostgreSQL database dump complete"
    rewrite_dump(
        env,
        name,
        lambda sql: sql.replace(footer, b"CREATE TABLE public.extra_t (x int);\n" + footer),
    )
    before = snapshot(env)
    r = env.run("restore", name, "--yes")
    assert r.returncode == 9, r.stderr
    assert "public.extra_t not in the backup" in r.stderr
    assert_refused_untouched(env, r, before)


def test_too_little_free_space_is_warned_about_before_the_question(env: Env) -> None:
    name = backup(env)
    path = env.backups / f"{name}.manifest.json"
    manifest = json.loads(path.read_text())
    manifest["source"]["database"]["size_bytes"] = 10**16  # 8.9 PiB: more than any disk here
    path.write_text(json.dumps(manifest))
    before = snapshot(env)
    r = env.run("restore", name)
    assert r.returncode == 10
    assert "WARNING: only" in r.stderr and "free where the server keeps its data" in r.stderr
    assert_refused_untouched(env, r, before)
