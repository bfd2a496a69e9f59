"""Second-line guards of logical backups, restores, prune and get: each test here fails when
the one line it guards is removed (see issue 15)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import select
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import (
    RFBACKUP,
    Env,
    created_databases,
    ddl_mark,
    finish,
    kill_group,
    table_checksums,
)
from manifest_doc import sidecar
from test_backup_faults import shim_bin, wait_for_partial
from test_retention import _age


def backup(env: Env) -> str:
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def walk(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden ones included, except our lock files."""
    found = []
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if not name.endswith(".lock"):
                found.append(str((Path(dirpath) / name).relative_to(folder)))
    return sorted(found)


def roles_file(env: Env, name: str) -> Path:
    """The roles sidecar the backup's manifest names."""
    manifest = json.loads((env.backups / f"{name}.manifest.json").read_text())
    return env.backups / str(sidecar(manifest, "roles")["key"])


def rewrite_data(env: Env, name: str, sql: bytes) -> None:
    """Replace a backup's data with ``sql`` (gzipped), the manifest's sha256 and size kept
    consistent, as a backup that really contained this SQL would be."""
    blob = gzip.compress(sql)
    (env.backups / name).write_bytes(blob)
    manifest_path = env.backups / f"{name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["data"].update(sha256=hashlib.sha256(blob).hexdigest(), stored_bytes=len(blob))
    manifest_path.write_text(json.dumps(manifest))


# -- backup ---------------------------------------------------------------------------------


def test_failed_manifest_write_deletes_the_data_and_roles_already_stored(env: Env) -> None:
    """The data and roles are committed before the manifest; if the manifest cannot be
    written, both must go. A stale in-progress write of every manifest name this run could
    pick makes the manifest write fail (and nothing else)."""
    env.backups.mkdir()
    now = datetime.now(UTC).replace(microsecond=0)
    blockers = []
    for s in range(-2, 180):
        stamp = (now + timedelta(seconds=s)).strftime("%Y%m%d_%H%M%S")
        blocker = env.backups / f".backup_{stamp}.sql.gz.manifest.json.partial"
        blocker.write_bytes(b"")
        blockers.append(blocker.name)
    r = env.run("backup", "postgres")
    assert r.returncode == 8, r.stderr
    assert "another write is in progress" in r.stderr
    assert walk(env.backups) == sorted(blockers)  # no data, no roles, no manifest


# -- restore --------------------------------------------------------------------------------


def test_corrupted_roles_sidecar_is_refused_before_anything_runs(env: Env) -> None:
    """A roles file replaced by another valid one (a script creating a role): only its
    sha256 tells, and the refusal comes before any role or database is created."""
    name = backup(env)
    roles = roles_file(env, name)
    assert roles.exists()
    roles.write_bytes(gzip.compress(b"CREATE ROLE intruder LOGIN SUPERUSER;\n"))
    mark, dbs = ddl_mark(env.pg), env.databases()
    r = env.run("restore", name, "--yes")
    assert r.returncode == 6, r.stderr
    assert f"backups/{roles.name} is corrupted" in r.stderr
    assert env.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'", "postgres") == "0"
    assert created_databases(env.pg, mark) == []
    assert env.databases() == dbs


def test_backup_changed_between_check_and_load_is_refused(env: Env) -> None:
    """The restore hashes what it loads, not only what it checked: content swapped after the
    sha256 check (while the restore waits for confirmation) is caught, the new database is
    dropped and the live one stays. The swapped dump has the same row counts, so only the
    re-hash can tell."""
    name = backup(env)
    before = table_checksums(env.pg.dsn(env.dbname))
    dbs = env.databases()
    sql = gzip.decompress((env.backups / name).read_bytes())
    tampered = sql.replace(b"@researchflow.example", b"@tampered.example", 1)
    assert tampered != sql
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [*RFBACKUP, "restore", name],
        cwd=env.cwd,
        env=env.vars,
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        seen = b""
        deadline = time.monotonic() + 60
        while b"[y/N]" not in seen:  # the sha256 check is done: the prompt is on screen
            assert time.monotonic() < deadline and proc.poll() is None, seen.decode()
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if ready:
                seen += os.read(proc.stderr.fileno(), 4096)
        (env.backups / name).write_bytes(gzip.compress(tampered))
        os.write(master, b"y\n")
        _, rest = proc.communicate(timeout=120)
    finally:
        os.close(master)
        os.close(slave)
        kill_group(proc)  # type: ignore[arg-type]
    err = (seen + rest).decode()
    assert proc.returncode == 6, err
    assert "changed while it was being restored" in err
    assert env.databases() == dbs
    assert table_checksums(env.pg.dsn(env.dbname)) == before


def test_extra_table_in_the_restored_database_is_flagged(env: Env) -> None:
    name = backup(env)
    sql = gzip.decompress((env.backups / name).read_bytes())
    # Inside the dump: data after pg_dump's footer is refused before psql (test_meta_commands).
    cut = sql.index(b"\n--\n-- PostgreSQL database dump complete")
    rewrite_data(env, name, sql[:cut] + b"\nCREATE TABLE public.smuggled (i int);\n" + sql[cut:])
    before = table_checksums(env.pg.dsn(env.dbname))
    dbs = env.databases()
    r = env.run("restore", name, "--yes")
    assert r.returncode == 9, r.stderr
    assert "public.smuggled not in the backup" in r.stderr
    assert env.databases() == dbs  # the new database was dropped
    assert table_checksums(env.pg.dsn(env.dbname)) == before


def test_get_refuses_a_same_size_corruption_and_leaves_nothing(env: Env, tmp_path: Path) -> None:
    name = backup(env)
    path = env.backups / name
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # same size: the listing still says "ok"
    path.write_bytes(bytes(blob))
    assert {e["name"]: e["status"] for e in json.loads(env.run("list", "--json").stdout)} == {
        name: "ok"
    }
    dest = tmp_path / "dl"
    r = env.run("get", name, str(dest))
    assert r.returncode == 6, r.stderr
    assert "sha256 mismatch" in r.stderr
    assert walk(dest) == []


# -- prune ----------------------------------------------------------------------------------


def undeletable(path: Path) -> None:
    """Make ``path`` impossible to unlink, even for root (immutable flag)."""
    r = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {r.stderr.strip()}")


def test_prune_deletes_the_manifest_before_the_data(env: Env) -> None:
    """A prune that dies half way must never leave a manifest whose data is gone (it would
    still count as a backup). The old backup's roles file cannot be deleted: the prune
    stops there, and what is left must no longer claim to be a backup."""
    old = _age(env, backup(env), 40)
    new = backup(env)
    roles = roles_file(env, old)
    undeletable(roles)
    try:
        r = env.run("prune", "--keep-days", "30", "--keep-min", "1")
    finally:
        subprocess.run(["chattr", "-i", str(roles)], check=True)
    assert r.returncode == 8, r.stderr
    assert "cannot delete" in r.stderr
    left = walk(env.backups)
    assert f"{old}.manifest.json" not in left  # deleted first
    assert old in left and roles.name in left  # the rest, after it, untouched
    assert {new, f"{new}.manifest.json"} <= set(left)
    listed = {e["name"]: e["status"] for e in json.loads(env.run("list", "--json").stdout)}
    assert listed == {new: "ok", old: "no-manifest"}


def test_include_unmanaged_is_off_while_a_backup_holds_the_lock(env: Env, tmp_path: Path) -> None:
    """While a backup runs, a data file may briefly exist without its manifest: prune
    --include-unmanaged must leave unmanaged files alone until the lock is free."""
    env.backups.mkdir()
    foreign = env.backups / "backup_20200101_000000.sql.gz"
    foreign.write_bytes(b"made by the old scripts")
    running = env.popen("backup", "postgres", RFBACKUP_PG_BIN=str(shim_bin(tmp_path, "sleep 60")))
    partial = wait_for_partial(env, running)
    r = env.run("prune", "--include-unmanaged", "--keep-days", "0", "--keep-min", "0")
    assert r.returncode == 5, r.stderr  # prune and backup exclude each other (lock + lease)
    assert "already running" in r.stderr
    assert foreign.exists() and partial.exists()
    kill_group(running)
    r = env.run("prune", "--include-unmanaged", "--keep-days", "0", "--keep-min", "0")
    assert r.returncode == 0, r.stderr
    assert not foreign.exists()  # the same call prunes it once no backup runs


# -- signals --------------------------------------------------------------------------------


def test_sigint_works_when_started_with_sigint_ignored(big_env: Env, tmp_path: Path) -> None:
    """`nohup` and `cmd &` start programs with SIGINT ignored; rfbackup installs its own
    handler, so Ctrl-C (or a supervisor's SIGINT) still stops it cleanly."""
    env = big_env

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(
        [*RFBACKUP, "backup", "postgres"],
        cwd=env.cwd,
        env={**env.vars, "RFBACKUP_PG_BIN": str(shim_bin(tmp_path, "exec sleep 60"))},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=ignore_sigint,
    )
    env.children.append(proc)
    wait_for_partial(env, proc)
    proc.send_signal(signal.SIGINT)
    _, err = finish(proc, timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted by SIGINT" in err
    assert walk(env.backups) == []
