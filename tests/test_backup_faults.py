"""A failed, interrupted or crashed backup must never look like a good one."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from conftest import RFBACKUP, Env, finish

from rfbackup.sandbox.postgres import PG_BIN


def shim_bin(tmp: Path, after_dump: str) -> Path:
    """A bin folder whose pg_dump runs the real one, then ``after_dump`` (e.g. exit 1)."""
    bindir = tmp / "shim-bin"
    bindir.mkdir()
    script = bindir / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = --version ] && exec "{PG_BIN}/pg_dump" --version\n'
        f'"{PG_BIN}/pg_dump" "$@" || exit $?\n{after_dump}\n'
    )
    script.chmod(0o755)
    for tool in ("pg_dumpall", "psql", "pg_restore"):
        (bindir / tool).symlink_to(PG_BIN / tool)
    return bindir


def wait_for_partial(env: Env, proc: subprocess.Popen[str], timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        partials = list(env.backups.glob(".backup_*.partial")) if env.backups.exists() else []
        if partials:  # created when pg_dump starts streaming into the pipeline
            return partials[0]
        time.sleep(0.02)
    raise AssertionError("the backup never started writing")


def assert_nothing_left(env: Env) -> None:
    assert env.data_files() == []
    hidden = [p.name for p in env.backups.glob(".*") if not p.name.endswith(".lock")]
    assert hidden == []


def test_pg_dump_failure_leaves_nothing(env: Env) -> None:
    env.sql("CREATE ROLE limited LOGIN PASSWORD 'limited-pw'; REVOKE ALL ON events FROM PUBLIC")
    r = env.run("backup", "postgres", PGUSER="limited", PGPASSWORD="limited-pw")
    assert r.returncode == 4, r.stderr
    assert "pg_dump failed" in r.stderr
    assert "permission denied" in r.stderr
    errors = [line for line in r.stderr.splitlines() if " ERROR " in line]
    assert errors == [r.stderr.splitlines()[-1]], r.stderr  # one error line, and it is last
    assert "pg_dump failed" in errors[0] and "permission denied" in errors[0]
    assert_nothing_left(env)


def test_pg_dump_exit_code_wins_over_complete_looking_output(env: Env, tmp_path: Path) -> None:
    """The runbook's `pg_dump | gzip` flaw: full output, exit 1, a valid-looking .gz."""
    bindir = shim_bin(tmp_path, "exit 1")
    r = env.run("backup", "postgres", RFBACKUP_PG_BIN=str(bindir))
    assert r.returncode == 4
    assert "pg_dump failed (exit 1)" in r.stderr
    assert_nothing_left(env)


def test_stream_broken_midway_leaves_nothing(big_env: Env, tmp_path: Path) -> None:
    """pg_dump's server session is ended in the middle of a COPY. No race: the dump is held
    still after 2 MiB (its reader stops reading), so the COPY is surely running when it is
    terminated; then the stream is released and pg_dump meets the broken connection."""
    env = big_env
    release = tmp_path / "release"
    bindir = tmp_path / "stall-bin"
    bindir.mkdir()
    script = bindir / "pg_dump"
    script.write_text(
        "#!/bin/bash\nset -o pipefail\n"
        f'[ "$1" = --version ] && exec "{PG_BIN}/pg_dump" --version\n'
        f'"{PG_BIN}/pg_dump" "$@" | {{ dd bs=1M count=2 iflag=fullblock status=none; '
        f'while [ ! -e "{release}" ]; do sleep 0.05; done; cat; }}\n'
    )
    script.chmod(0o755)
    for tool in ("pg_dumpall", "psql", "pg_restore"):
        (bindir / tool).symlink_to(PG_BIN / tool)
    proc = env.popen("backup", "postgres", RFBACKUP_PG_BIN=str(bindir))
    copying = (
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_dump'"
        " AND state = 'active' AND query LIKE 'COPY %'"
    )
    with psycopg.connect(env.pg.dsn(), autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while not (row := conn.execute(copying).fetchone()):
            assert proc.poll() is None and time.monotonic() < deadline, "no COPY ever ran"
            time.sleep(0.05)
        conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
    release.touch()
    _, err = finish(proc, timeout=60)
    assert proc.returncode == 4, err
    assert "pg_dump failed" in err
    # libpq reports the termination as the server's FATAL message or, when the socket closed
    # before that message was read, as the closed connection: both name the broken stream.
    broken = ("terminating connection due to administrator command", "server closed the connection")
    assert any(reason in err for reason in broken), err
    assert_nothing_left(env)


def test_disk_full_leaves_nothing(env: Env) -> None:
    env.backups.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(env.backups)],
            capture_output=True,
        ).returncode
        == 0
    )
    try:
        if mounted:
            r = env.run("backup", "postgres")
            expected = "disk full"
        else:  # no permission to mount: the kernel's file size limit gives the same failure

            def limit() -> None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (96 * 1024, 96 * 1024))

            r = subprocess.run(
                [*RFBACKUP, "backup", "postgres"],
                cwd=env.cwd,
                env=env.vars,
                capture_output=True,
                text=True,
                preexec_fn=limit,
                timeout=120,
            )
            expected = "file size limit"
        assert r.returncode == 8, r.stderr
        assert expected in r.stderr
        assert_nothing_left(env)
    finally:
        if mounted:
            subprocess.run(["umount", str(env.backups)], check=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_backup_leaves_nothing(
    big_env: Env, tmp_path: Path, sig: signal.Signals
) -> None:
    env = big_env
    bindir = shim_bin(tmp_path, "exec sleep 30")  # a dump that stalls after writing data
    proc = env.popen("backup", "postgres", RFBACKUP_PG_BIN=str(bindir))
    wait_for_partial(env, proc)
    proc.send_signal(sig)
    _, err = finish(proc, timeout=30)
    assert proc.returncode == 128 + sig, err
    assert f"interrupted by {sig.name}" in err
    assert_nothing_left(env)


def test_kill9_leaves_a_partial_that_is_never_listed_as_good(big_env: Env, tmp_path: Path) -> None:
    env = big_env
    bindir = shim_bin(tmp_path, "exec sleep 30")
    proc = subprocess.Popen(
        [*RFBACKUP, "backup", "postgres"],
        cwd=env.cwd,
        env={**env.vars, "RFBACKUP_PG_BIN": str(bindir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        partial = wait_for_partial(env, proc)  # type: ignore[arg-type]
        proc.kill()
        proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed before pg_dump started
            os.killpg(proc.pid, signal.SIGKILL)  # the stalled pg_dump shim too
    assert partial.exists()

    listed = json.loads(env.run("list", "--json").stdout)
    assert [(e["name"], e["status"]) for e in listed] == [
        (partial.name[1 : -len(".partial")], "abandoned")
    ]

    # The lock died with its holder: the next run is not blocked, and cleans up.
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    assert "left by an interrupted run" in r.stderr
    assert not partial.exists()
    statuses = {e["status"] for e in json.loads(env.run("list", "--json").stdout)}
    assert statuses == {"ok"}


def test_concurrent_backup_is_refused(big_env: Env, tmp_path: Path) -> None:
    env = big_env
    bindir = shim_bin(tmp_path, "exec sleep 30")
    first = env.popen("backup", "postgres", RFBACKUP_PG_BIN=str(bindir))
    try:
        wait_for_partial(env, first)
        second = env.run("backup", "postgres")
        assert second.returncode == 5
        assert "already running" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        finish(first, timeout=30)


def argv_logging_bin(tmp: Path) -> tuple[Path, Path]:
    """A bin folder whose PostgreSQL tools record their argv (one line each) into a log, then
    run the real tool: every command line rfbackup starts is seen, without racing /proc."""
    bindir, log = tmp / "argv-bin", tmp / "argv.log"
    bindir.mkdir()
    for tool in ("pg_dump", "pg_dumpall", "psql", "pg_restore"):
        script = bindir / tool
        script.write_text(
            f'#!/bin/sh\nprintf "%s " "{tool}" "$@" >> "{log}"\necho >> "{log}"\n'
            f'exec "{PG_BIN}/{tool}" "$@"\n'
        )
        script.chmod(0o755)
    return bindir, log


@pytest.mark.parametrize("how", ["PGPASSWORD", "DATABASE_URL"])
def test_no_password_in_argv_logs_or_manifest(env: Env, tmp_path: Path, how: str) -> None:
    secret = "S3cret-" + how
    user = f"secretive_{how.lower()}"
    env.sql(f"CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{secret}'", "postgres")
    extra = {"PGUSER": user, "PGPASSWORD": secret}
    if how == "DATABASE_URL":
        port = env.vars["PGPORT"]
        extra = {
            "PGUSER": "",
            "PGPASSWORD": "",
            "DATABASE_URL": f"postgresql://{user}:{secret}@127.0.0.1:{port}/{env.dbname}",
        }
    bindir, argv_log = argv_logging_bin(tmp_path)
    b = env.run("backup", "postgres", RFBACKUP_PG_BIN=str(bindir), **extra)
    assert b.returncode == 0, b.stderr
    r = env.run("restore", b.stdout.strip(), "--yes", RFBACKUP_PG_BIN=str(bindir), **extra)
    assert r.returncode == 0, r.stderr
    argvs = argv_log.read_text().splitlines()
    assert any(a.startswith("pg_dump ") and "--snapshot=" in a for a in argvs), argvs
    assert any(a.startswith("pg_dumpall ") for a in argvs), argvs
    assert any(a.startswith("psql ") and "--single-transaction" in a for a in argvs), argvs
    assert [a for a in argvs if secret in a] == []
    for path in [env.log_file, *env.backups.iterdir()]:
        if path.name.endswith((".json", ".log")):
            assert secret not in path.read_text()
    assert secret not in b.stdout + b.stderr + r.stdout + r.stderr
