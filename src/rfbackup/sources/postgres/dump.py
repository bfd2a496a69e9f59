"""A consistent logical dump with exact row counts from the same snapshot.

One connection opens a REPEATABLE READ transaction and exports its snapshot; pg_dump imports
it (``--snapshot``), and the same connection counts every table while pg_dump streams. Both
therefore see exactly the same data, so the counts are what a restore must reproduce.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from rfbackup import interrupts
from rfbackup.errors import SourceError
from rfbackup.pipeline import BLOCK_SIZE
from rfbackup.sources.postgres import tools, verify_counts
from rfbackup.sources.postgres.target import PostgresTarget

CHUNK = BLOCK_SIZE  # one compression block per read: handed over without copying

TABLES_SQL = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1
"""


def connect(target: PostgresTarget, **extra: Any) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(**target.connect_kwargs(), **extra)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "connection failed"
        raise SourceError(f"cannot connect to {target.display}: {reason}") from None


def list_tables(cur: psycopg.Cursor[Any]) -> list[str]:
    cur.execute(TABLES_SQL)
    return [row[0] for row in cur.fetchall()]


def count_rows(cur: psycopg.Cursor[Any], tables: list[str], only: bool = True) -> dict[str, int]:
    """Rows of each table; with ``only`` (manifests since checks were added) a parent of
    inherited tables counts its own rows, not its children's too."""
    counts = {}
    select = "SELECT count(*) FROM ONLY {}" if only else "SELECT count(*) FROM {}"
    for table in tables:
        cur.execute(sql.SQL(select).format(sql.SQL(table)))
        row = cur.fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def _read_sequences(cur: psycopg.Cursor[Any], when: str) -> dict[str, list[Any]]:
    try:
        return verify_counts.sequences(cur)
    except psycopg.Error as exc:
        reason = (exc.diag.message_primary or str(exc)).strip()
        raise SourceError(f"reading sequence values {when} failed: {reason}") from None


@dataclass
class DumpInfo:
    database: dict[str, Any] = field(default_factory=dict)
    pg_dump_version: str = ""
    snapshot: str = ""
    # The snapshot's xmin (a 64-bit transaction id): every row whose xmin precedes it was
    # committed before the dump and is in it (the drill's "unchanged since the backup").
    snapshot_xmin: int | None = None
    row_counts: dict[str, int] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)  # see verify_counts


class PostgresDump:
    """``with PostgresDump(target, "plain") as dump: for chunk in dump.chunks(): ...``

    Call :meth:`finish` after the last chunk: it raises SourceError unless pg_dump and the
    row counts both succeeded. Leaving the block without finish() stops pg_dump.
    """

    def __init__(self, target: PostgresTarget, dump_format: str) -> None:
        self.target = target
        self.dump_format = dump_format
        self.info = DumpInfo()
        self._conn: psycopg.Connection[Any] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: tools.StderrTail | None = None
        self._counter: threading.Thread | None = None
        self._count_error: BaseException | None = None
        self._sequences_before: dict[str, list[Any]] = {}

    def __enter__(self) -> PostgresDump:
        try:
            self._start()
        except BaseException:
            self.abort()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()

    def _start(self) -> None:
        self._conn = conn = connect(self.target, autocommit=False)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            self.info.snapshot = str(cur.fetchone()[0])  # type: ignore[index]
            cur.execute("SELECT txid_snapshot_xmin(txid_current_snapshot())::text")
            self.info.snapshot_xmin = int(cur.fetchone()[0])  # type: ignore[index]
            cur.execute(
                "SELECT current_database(), current_setting('server_version'),"
                " current_setting('server_version_num')::int, pg_encoding_to_char(encoding),"
                " datcollate, datctype, pg_database_size(current_database())"
                " FROM pg_database WHERE datname = current_database()"
            )
            name, version, version_num, encoding, collate, ctype, size = cur.fetchone()  # type: ignore[misc]
            tables = list_tables(cur)
            self._sequences_before = _read_sequences(cur, "before the dump")
        self.info.database = {
            "name": name,
            "host": self.target.host,
            "port": self.target.port,
            "server_version": version,
            "server_version_num": version_num,
            "encoding": encoding,
            "lc_collate": collate,
            "lc_ctype": ctype,
            "size_bytes": size,
            "tables": len(tables),
        }
        pg_dump = tools.find("pg_dump", self.target.bin_dir)
        self.info.pg_dump_version = tools.version(pg_dump)
        args = [pg_dump, "--no-password", f"--snapshot={self.info.snapshot}"]
        if self.dump_format == "custom":
            args += ["--format=custom", "--compress=0"]
        else:
            args += ["--format=plain"]
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=self.target.with_dbname(name).child_env(),
        )
        assert self._proc.stderr is not None
        self._stderr = tools.StderrTail(self._proc.stderr)
        self._counter = threading.Thread(target=self._count, args=(tables,), daemon=True)
        self._counter.start()

    def _count(self, tables: list[str]) -> None:
        interrupts.leave_to_main_thread()
        assert self._conn is not None
        try:
            with self._conn.cursor() as cur:
                self.info.row_counts = count_rows(cur, tables)
                self.info.checks = verify_counts.snapshot_checks(cur)
        except BaseException as exc:  # reported by finish()
            self._count_error = exc

    @property
    def size_estimate(self) -> int:
        return int(self.info.database.get("size_bytes") or 0)

    def chunks(self) -> Iterator[bytes]:
        assert self._proc is not None and self._proc.stdout is not None
        read = self._proc.stdout.read
        while chunk := read(CHUNK):
            yield chunk

    def finish(self) -> DumpInfo:
        assert self._proc is not None and self._stderr is not None and self._counter is not None
        rc = self._proc.wait()
        self._counter.join()
        problems = []
        if rc != 0:
            problems.append(f"pg_dump failed (exit {rc}): {self._stderr.last}")
        if self._count_error is not None:
            reason = str(self._count_error).strip().splitlines()[0]
            problems.append(f"counting rows in the dump's snapshot failed: {reason}")
        if problems:
            raise SourceError("; ".join(problems))
        assert self._conn is not None
        with self._conn.cursor() as cur:
            after = _read_sequences(cur, "after the dump")
        self.info.checks["sequences"] = verify_counts.bracket(self._sequences_before, after)
        self._conn.commit()
        return self.info

    def abort(self) -> None:
        if self._proc is not None:
            tools.stop(self._proc)
        if self._conn is not None:
            if self._counter is not None and self._counter.is_alive():
                self._conn.cancel_safe()
                self._counter.join(timeout=10)
            self._conn.close()
