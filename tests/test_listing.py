"""`rfbackup list`: every file shows up, with an honest status."""

from __future__ import annotations

import json
from datetime import datetime

from conftest import Env


def test_list_json_shows_backups_and_foreign_files(env: Env) -> None:
    assert json.loads(env.run("list", "--json").stdout) == []
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    name = r.stdout.strip()
    (env.backups / "backup_20250120_143000.sql.gz").write_bytes(b"\x1f\x8b old script output")

    listed = json.loads(env.run("list", "--json").stdout)
    assert [e["name"] for e in listed] == [name, "backup_20250120_143000.sql.gz"]
    ours, foreign = listed
    for key in ("name", "component", "created_at", "size_bytes", "sha256", "status"):
        assert key in ours
    assert ours["status"] == "ok" and ours["component"] == "postgres"
    assert ours["size_bytes"] == (env.backups / name).stat().st_size
    assert len(ours["sha256"]) == 64
    assert datetime.strptime(ours["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert foreign["status"] == "no-manifest" and foreign["sha256"] is None
    assert foreign["created_at"] == "2025-01-20T14:30:00Z"


def test_list_table_marks_unverified_files(env: Env) -> None:
    env.backups.mkdir()
    (env.backups / "backup_20250120_143000.sql.gz").write_bytes(b"old")
    out = env.run("list").stdout
    assert "backup_20250120_143000.sql.gz" in out and "no-manifest" in out
    assert "AGE" in out and "SIZE" in out and "STATUS" in out


def test_production_names_and_crontab(env: Env) -> None:
    r = env.run("backup", "postgres", "--env", "production")
    assert r.returncode == 3  # production refuses to write a plaintext backup by default
    assert "must be encrypted" in r.stderr
    assert env.data_files() == []
    r = env.run(
        "backup",
        "postgres",
        "--env",
        "production",
        RFBACKUP_ENCRYPTION__ALLOW_UNENCRYPTED_PRODUCTION="true",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("backup_prod_") and r.stdout.strip().endswith(".sql.gz")
    listed = json.loads(env.run("list", "--json").stdout)
    assert listed[0]["environment"] == "production"
    cron = env.run("schedule", "crontab").stdout.splitlines()
    assert f"0 2 * * * cd {env.cwd} && make db-backup >> logs/backup.log 2>&1" in cron
    assert f"0 3 * * 0 cd {env.cwd} && make db-backup-retention >> logs/backup.log 2>&1" in cron


def test_log_lines_go_to_stderr_and_the_log_file_once(env: Env) -> None:
    r = env.run("backup", "postgres")
    assert r.returncode == 0
    assert "done:" in r.stderr
    assert "done:" in env.log_file.read_text()
    # When cron sends stderr into the log file itself, each line is written once.
    env.log_file.write_text("")
    with open(env.log_file, "a") as fh:
        import subprocess

        from conftest import RFBACKUP

        subprocess.run(
            [*RFBACKUP, "list"],
            cwd=env.cwd,
            env=env.vars,
            stderr=fh,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [*RFBACKUP, "backup", "postgres"],
            cwd=env.cwd,
            env=env.vars,
            stderr=fh,
            stdout=subprocess.DEVNULL,
            check=True,
        )
    assert env.log_file.read_text().count("done:") == 1


def test_bad_input_gets_one_line_and_nonzero_exit(env: Env) -> None:
    cases = [
        (("backup", "postgres", "--format", "tar"), 2),  # a choice: usage error, like --env
        (("backup", "postgres", "--compression", "lz4"), 2),
        (("list", "--bogus"), 2),
        (("restore", "postgres"), 2),
        (("backup", "postgres", "--env", "qa"), 2),
    ]
    for args, code in cases:
        r = env.run(*args)
        assert r.returncode == code, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    r = env.run("backup", "postgres", PGDATABASE="", PGPORT="1")
    assert r.returncode == 3 and "no database" in r.stderr
    r = env.run("backup", "postgres", PGPORT="1")
    assert r.returncode == 4 and "cannot connect" in r.stderr
    assert env.data_files() == []
