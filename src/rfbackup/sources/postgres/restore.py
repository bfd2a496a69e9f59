"""Loading a dump into a NEW database, checking it, and swapping it into place by renaming.

Nothing here touches the live database until :func:`swap`, which renames both databases in
one transaction: either the restored copy is live and the old one kept under a dated name,
or nothing changed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql

from rfbackup.errors import RestoreError
from rfbackup.pipeline import Readable
from rfbackup.sources.postgres import tools, verify_counts
from rfbackup.sources.postgres.dump import connect, count_rows, list_tables
from rfbackup.sources.postgres.target import PostgresTarget

MAINTENANCE_DBS = ("postgres", "template1")
CHUNK = 1024 * 1024


def admin_connection(target: PostgresTarget) -> psycopg.Connection[Any]:
    """A connection to a maintenance database, for CREATE / RENAME / DROP DATABASE."""
    last: Exception | None = None
    for dbname in MAINTENANCE_DBS:
        try:
            return connect(target.with_dbname(dbname), autocommit=True)
        except Exception as exc:  # try the next maintenance database
            last = exc
    raise RestoreError(f"cannot connect to a maintenance database on {target.display}: {last}")


def database_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


def create_database(conn: psycopg.Connection[Any], name: str, like: dict[str, Any]) -> None:
    """CREATE DATABASE from template0 with the source's encoding and locale when known."""
    opts: list[sql.Composable] = [sql.SQL("TEMPLATE template0")]
    if like.get("encoding"):
        opts.append(sql.SQL("ENCODING {}").format(sql.Literal(like["encoding"])))
    if like.get("lc_collate") and like.get("lc_ctype"):
        opts.append(sql.SQL("LC_COLLATE {}").format(sql.Literal(like["lc_collate"])))
        opts.append(sql.SQL("LC_CTYPE {}").format(sql.Literal(like["lc_ctype"])))
    stmt = sql.SQL("CREATE DATABASE {} ").format(sql.Identifier(name)) + sql.SQL(" ").join(opts)
    try:
        with conn.cursor() as cur:
            cur.execute(stmt)
    except psycopg.errors.InvalidParameterValue:
        # The source's locale does not exist here: fall back to this server's default.
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
            )
    except psycopg.Error as exc:
        raise RestoreError(f"cannot create database {name}: {exc.diag.message_primary}") from None


def drop_database(conn: psycopg.Connection[Any], name: str) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def psql_args(target: PostgresTarget) -> list[str]:
    """psql reading SQL from stdin: no psqlrc, one transaction, stop at the first error."""
    psql = tools.find("psql", target.bin_dir)
    return [
        psql,
        "-X",
        "-q",
        "--no-password",
        "-v",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        "-f",
        "-",
    ]


def run_sql_script(target: PostgresTarget, dbname: str, script: str) -> None:
    """A small script (the roles) through psql, stopping at the first error."""
    proc = subprocess.run(
        psql_args(target),
        input=script.encode(),
        capture_output=True,
        env=target.with_dbname(dbname).child_env(),
        check=False,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RestoreError(f"creating roles failed: {err[-1] if err else proc.returncode}")


def load_plain(
    target: PostgresTarget, dbname: str, stream: Readable, progress: Callable[[int], None]
) -> None:
    """Feed a plain SQL dump to psql: one transaction, stop at the first error."""
    _feed(psql_args(target), target.with_dbname(dbname), stream, progress)


def load_custom(
    target: PostgresTarget,
    dbname: str,
    stream: Readable | None,
    path: str | None,
    jobs: int,
    progress: Callable[[int], None],
) -> None:
    """pg_restore: from a seekable file with ``--jobs``, or from a stream in one job."""
    args = [
        tools.find("pg_restore", target.bin_dir),
        "--no-password",
        "--exit-on-error",
        "-d",
        dbname,
    ]
    if path is not None:
        proc = subprocess.run(
            [*args, f"--jobs={jobs}", path],
            capture_output=True,
            env=target.with_dbname(dbname).child_env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln]
            detail = tools.first_error(lines) or (lines[-1] if lines else "no error output")
            raise RestoreError(f"pg_restore failed (exit {proc.returncode}): {detail}")
        return
    assert stream is not None
    _feed([*args, "--single-transaction"], target.with_dbname(dbname), stream, progress)


def _feed(
    args: list[str], target: PostgresTarget, stream: Readable, progress: Callable[[int], None]
) -> None:
    proc = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=target.child_env(),
    )
    assert proc.stdin is not None and proc.stderr is not None
    stderr = tools.StderrTail(proc.stderr)
    tool = args[0].rsplit("/", 1)[-1]
    try:
        write = proc.stdin.write
        while chunk := stream.read(CHUNK):
            write(chunk)
            progress(len(chunk))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the tool stopped reading: its exit code and stderr say why
    except BaseException:
        tools.stop(proc)
        raise
    rc = proc.wait()
    if rc != 0:
        last = stderr.last  # waits for the whole of stderr
        raise RestoreError(f"{tool} failed (exit {rc}): {stderr.first_error or last}")


def restored_counts(
    target: PostgresTarget, dbname: str, only: bool = True
) -> tuple[dict[str, int], dict[str, Any]]:
    """Row counts of every table, and the other checks (verify_counts.restored_checks)."""
    with connect(target.with_dbname(dbname)) as conn, conn.cursor() as cur:
        counts = count_rows(cur, list_tables(cur), only)
        return counts, verify_counts.restored_checks(cur)


def large_object_count(target: PostgresTarget, dbname: str) -> int:
    with connect(target.with_dbname(dbname)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_largeobject_metadata")
        row = cur.fetchone()
        return int(row[0]) if row else 0


def holds_data(target: PostgresTarget, dbname: str) -> bool:
    """Does any table hold a row, or is there a large object? (Stops at the first found.)"""
    with connect(target.with_dbname(dbname)) as conn, conn.cursor() as cur:
        for table in list_tables(cur):
            cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM ONLY {})").format(sql.SQL(table)))
            row = cur.fetchone()
            if row and row[0]:
                return True
        cur.execute("SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata)")
        row = cur.fetchone()
        return bool(row and row[0])


def rename(conn: psycopg.Connection[Any], name: str, new_name: str) -> None:
    """A --target-db restore's working database takes the requested name, once checked."""
    terminate_sessions(conn, [name])
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(name), sql.Identifier(new_name)
                )
            )
    except psycopg.Error as exc:
        raise RestoreError(
            f"renaming {name} to {new_name} failed: {exc.diag.message_primary}"
        ) from None


def compare_counts(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    """Human-readable differences; empty when the restore reproduced every table exactly."""
    problems = []
    for table, rows in sorted(expected.items()):
        if table not in actual:
            problems.append(f"{table} missing")
        elif actual[table] != rows:
            problems.append(f"{table} has {actual[table]} rows, backup had {rows}")
    problems += [f"{t} not in the backup" for t in sorted(set(actual) - set(expected))]
    return problems


def terminate_sessions(conn: psycopg.Connection[Any], names: Iterable[str]) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
            (list(names),),
        )


def swap(conn: psycopg.Connection[Any], live: str, restored: str, keep_as: str | None) -> None:
    """Make ``restored`` the live database; keep the old one as ``keep_as`` (if it existed).

    Both renames run in one transaction. Sessions on the live database are terminated first,
    which a rename requires; new ones arriving in between make us retry a few times.
    """
    last = ""
    for _attempt in range(10):
        terminate_sessions(conn, [live, restored])
        try:
            with conn.transaction(), conn.cursor() as cur:
                if keep_as is not None:
                    cur.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(live), sql.Identifier(keep_as)
                        )
                    )
                cur.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(restored), sql.Identifier(live)
                    )
                )
            return
        except psycopg.errors.ObjectInUse as exc:
            last = exc.diag.message_primary or str(exc)
            time.sleep(0.5)
        except psycopg.Error as exc:
            raise RestoreError(f"swapping databases failed: {exc.diag.message_primary}") from None
    raise RestoreError(f"swapping databases failed: {last}")
