"""The runbook's make targets: no shell re-parsing of make variables, YES/ARGS pass through,
and rfbackup's exit code reaches the caller (through scripts/runbook; make shows it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import Env, table_checksums

REPO = Path(__file__).resolve().parents[1]


def run(env: Env, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    vars_ = {
        **env.vars,
        "RFBACKUP_BACKUP_DIR": str(env.backups),
        "RFBACKUP_LOG_FILE": str(env.log_file),
        **extra,
    }
    return subprocess.run(
        list(argv), cwd=REPO, env=vars_, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    "variable,value,code",
    [
        ("BACKUP_FILE", 'x"; touch {m}; echo "', 7),  # no such backup
        ("BACKUP_FILE", "$(touch {m})", 2),  # make expands $(...) itself: empty, usage
        ("BACKUP_FILE", "`touch {m}`", 7),
        ("ARGS", "--target-db $(touch {m}) ; touch {m}", 2),  # stray words: a usage error
    ],
)
def test_make_variables_are_never_run_by_a_shell(
    env: Env, variable: str, value: str, code: int
) -> None:
    marker = env.cwd / "pwned"
    assigned = {"BACKUP_FILE": "nothing.sql.gz", variable: value.format(m=marker)}
    r = run(env, "make", "-s", "db-restore", *(f"{k}={v}" for k, v in assigned.items()))
    assert r.returncode == 2  # make's own code for a failed recipe
    assert not marker.exists()
    assert f"Error {code}" in r.stderr, r.stderr  # rfbackup's own code, shown by make


def test_runbook_script_exits_with_rfbackups_code(env: Env) -> None:
    r = run(env, "scripts/runbook", "db-restore", "nothing.sql.gz")
    assert r.returncode == 7, r.stderr  # NotFound
    r = run(env, "make", "-s", "db-restore", "BACKUP_FILE=nothing.sql.gz")
    assert r.returncode == 2 and "Error 7" in r.stderr, r.stderr


def test_db_restore_with_yes_and_args_through_make(env: Env) -> None:
    assert run(env, "make", "-s", "db-backup").returncode == 0
    name = next(p.name for p in env.backups.glob("backup_*.sql.gz") if "roles" not in p.name)
    path = str(env.backups / name)
    # Without a terminal and without YES=1: refused, and the hint names YES=1.
    r = run(env, "scripts/runbook", "db-restore", path)
    assert r.returncode == 10, r.stderr
    assert "YES=1" in r.stderr
    copy = f"{env.dbname}_viamake"
    r = run(
        env, "make", "-s", "db-restore", f"BACKUP_FILE={path}", "YES=1", f"ARGS=--target-db {copy}"
    )
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(copy)) == table_checksums(env.pg.dsn(env.dbname))
